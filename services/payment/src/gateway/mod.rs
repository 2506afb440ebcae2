//! The payment gateway the service talks to, behind a trait so the test
//! gateway (and later a real one) plug in the same way.

mod test_gateway;

use std::future::Future;

use checkout_domain::{CardToken, Money, OrderId};
use checkout_messages::payloads::payment::DeclineCode;

pub use test_gateway::TestGateway;

/// An operation on one order's payment at the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Authorize,
    Capture,
    Void,
    Refund,
}

impl Operation {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

/// Names one operation on one order's payment, the way real gateways take an
/// `Idempotency-Key`: a gateway that sees a key again answers with the first
/// call's outcome and does not act twice. Each operation happens at most once
/// per order, so the key is the order and the operation; a call repeated
/// after a crash or a redelivery carries the same key and has one effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn new(order: OrderId, operation: Operation) -> Self {
        Self(format!("{}-{}", order.as_uuid().simple(), operation.as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An authorization request, with the key that makes asking again for the
/// same order never place a second hold.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    pub order_id: OrderId,
    pub amount: Money,
    pub card_token: CardToken,
    pub idempotency_key: IdempotencyKey,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    Approved { authorization_id: String },
    Declined { code: DeclineCode, detail: String },
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The gateway could not be reached or failed; asking again may work.
    #[error("payment gateway unavailable: {0}")]
    Unavailable(String),
}

pub trait PaymentGateway: Send + Sync + 'static {
    fn authorize(
        &self,
        request: &AuthorizationRequest,
    ) -> impl Future<Output = Result<Authorization, GatewayError>> + Send;

    fn capture(
        &self,
        key: &IdempotencyKey,
        authorization_id: &str,
        amount: Money,
    ) -> impl Future<Output = Result<(), GatewayError>> + Send;

    /// Releases the hold, or cancels an authorization still pending for the order.
    fn void(
        &self,
        key: &IdempotencyKey,
        order_id: OrderId,
        authorization_id: Option<&str>,
    ) -> impl Future<Output = Result<(), GatewayError>> + Send;

    fn refund(
        &self,
        key: &IdempotencyKey,
        authorization_id: &str,
        amount: Money,
    ) -> impl Future<Output = Result<(), GatewayError>> + Send;
}
