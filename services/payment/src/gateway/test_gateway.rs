use checkout_domain::{Money, OrderId};
use checkout_messages::payloads::payment::DeclineCode;
use sqlx::PgPool;

use super::{Authorization, AuthorizationRequest, GatewayError, IdempotencyKey, Operation, PaymentGateway};

/// A deterministic gateway for tests and demos: the card token decides.
///
/// | token                    | outcome                              |
/// |--------------------------|--------------------------------------|
/// | `tok_visa`               | approved                             |
/// | `tok_decline`            | declined: card declined              |
/// | `tok_insufficient_funds` | declined: insufficient funds         |
/// | `tok_timeout`            | never answers                        |
/// | anything else            | declined, naming the tokens above    |
///
/// Like a real gateway it keeps a journal of the calls it received by
/// idempotency key (`test_gateway_calls`, in the payment database so it
/// outlives a crash of the service): an operation is carried out on a key's
/// first call only; a repeat is counted, logged, and answered the same way.
#[derive(Clone, Debug)]
pub struct TestGateway {
    journal: PgPool,
}

impl TestGateway {
    pub const APPROVE: &'static str = "tok_visa";
    pub const DECLINE: &'static str = "tok_decline";
    pub const INSUFFICIENT_FUNDS: &'static str = "tok_insufficient_funds";
    pub const NEVER_ANSWER: &'static str = "tok_timeout";

    pub fn new(journal: PgPool) -> Self {
        Self { journal }
    }

    /// Records a call; returns how many calls this key has had, this one included.
    async fn receive(&self, key: &IdempotencyKey, operation: Operation) -> Result<i32, GatewayError> {
        let calls = sqlx::query_scalar!(
            "INSERT INTO test_gateway_calls (idempotency_key, operation) VALUES ($1, $2)
             ON CONFLICT (idempotency_key) DO UPDATE
                 SET calls = test_gateway_calls.calls + 1, last_called_at = now()
             RETURNING calls",
            key.as_str(),
            operation.as_str(),
        )
        .fetch_one(&self.journal)
        .await
        .map_err(|error| GatewayError::Unavailable(format!("test gateway journal: {error}")))?;
        if calls > 1 {
            tracing::warn!(idempotency.key = %key, calls, "test gateway: repeated idempotency key; answering as the first time");
        }
        Ok(calls)
    }
}

impl PaymentGateway for TestGateway {
    async fn authorize(&self, request: &AuthorizationRequest) -> Result<Authorization, GatewayError> {
        self.receive(&request.idempotency_key, Operation::Authorize).await?;
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

    async fn capture(&self, key: &IdempotencyKey, _: &str, _: Money) -> Result<(), GatewayError> {
        self.receive(key, Operation::Capture).await.map(drop)
    }

    async fn void(&self, key: &IdempotencyKey, _: OrderId, _: Option<&str>) -> Result<(), GatewayError> {
        self.receive(key, Operation::Void).await.map(drop)
    }

    async fn refund(&self, key: &IdempotencyKey, _: &str, _: Money) -> Result<(), GatewayError> {
        self.receive(key, Operation::Refund).await.map(drop)
    }
}
