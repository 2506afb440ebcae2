//! The payment gateway the service talks to, behind a trait so the test
//! gateway (and later a real one) plug in the same way.

mod test_gateway;

use std::future::Future;

use checkout_domain::{CardToken, Money, OrderId};
use checkout_messages::payloads::payment::DeclineCode;

pub use test_gateway::TestGateway;

/// An authorization request; the order id is the idempotency key, so asking
/// again for the same order never places a second hold.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    pub order_id: OrderId,
    pub amount: Money,
    pub card_token: CardToken,
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

    fn capture(&self, authorization_id: &str, amount: Money) -> impl Future<Output = Result<(), GatewayError>> + Send;

    /// Releases the hold, or cancels an authorization still pending for the order.
    fn void(
        &self,
        order_id: OrderId,
        authorization_id: Option<&str>,
    ) -> impl Future<Output = Result<(), GatewayError>> + Send;

    fn refund(&self, authorization_id: &str, amount: Money) -> impl Future<Output = Result<(), GatewayError>> + Send;
}
