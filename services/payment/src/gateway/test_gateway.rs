use checkout_domain::{Money, OrderId};
use checkout_messages::payloads::payment::DeclineCode;

use super::{Authorization, AuthorizationRequest, GatewayError, PaymentGateway};

/// A deterministic gateway for tests and demos: the card token decides.
///
/// | token                    | outcome                              |
/// |--------------------------|--------------------------------------|
/// | `tok_visa`               | approved                             |
/// | `tok_decline`            | declined: card declined              |
/// | `tok_insufficient_funds` | declined: insufficient funds         |
/// | `tok_timeout`            | never answers                        |
/// | anything else            | declined, naming the tokens above    |
#[derive(Clone, Copy, Debug, Default)]
pub struct TestGateway;

impl TestGateway {
    pub const APPROVE: &'static str = "tok_visa";
    pub const DECLINE: &'static str = "tok_decline";
    pub const INSUFFICIENT_FUNDS: &'static str = "tok_insufficient_funds";
    pub const NEVER_ANSWER: &'static str = "tok_timeout";
}

impl PaymentGateway for TestGateway {
    async fn authorize(&self, request: &AuthorizationRequest) -> Result<Authorization, GatewayError> {
        Ok(match request.card_token.as_str() {
            Self::APPROVE => {
                Authorization::Approved { authorization_id: format!("auth_{}", request.order_id.as_uuid().simple()) }
            }
            Self::DECLINE => {
                Authorization::Declined { code: DeclineCode::CardDeclined, detail: "card declined".into() }
            }
            Self::INSUFFICIENT_FUNDS => {
                Authorization::Declined { code: DeclineCode::InsufficientFunds, detail: "insufficient funds".into() }
            }
            Self::NEVER_ANSWER => std::future::pending().await,
            _ => Authorization::Declined {
                code: DeclineCode::CardDeclined,
                detail: "unknown test card: use tok_visa, tok_decline, tok_insufficient_funds or tok_timeout".into(),
            },
        })
    }

    async fn capture(&self, _: &str, _: Money) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn void(&self, _: OrderId, _: Option<&str>) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn refund(&self, _: &str, _: Money) -> Result<(), GatewayError> {
        Ok(())
    }
}
