use std::time::Duration;

use checkout_domain::{Money, OrderId};
use checkout_kafka::{Handler, HandlerError, Incoming};
use checkout_messages::payloads::payment::{
    AuthorizePayment, DeclineCode, PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentVoided,
};
use checkout_messages::{Message, Source};
use checkout_outbox::{UnitOfWork, already_processed, caused_by, handler_error};
use sqlx::{PgConnection, PgPool};

use crate::gateway::{Authorization, AuthorizationRequest, GatewayError, PaymentGateway};
use crate::ledger::{Plan, Status, plan};
use crate::store::{self, StoreError};

/// The payment service's name in the inbox.
const CONSUMER: &str = "payment";

/// Handles `AuthorizePayment`, `CapturePayment`, `VoidPayment` and `RefundPayment`.
///
/// The gateway is called outside any database transaction (a slow gateway
/// must not hold locks); its outcome is then recorded together with the
/// inbox entry and the reply. An authorization is recorded as under way
/// before the call, so a void that follows a crash still finds it.
#[derive(Debug, Clone)]
pub struct PaymentHandler<G> {
    pool: PgPool,
    gateway: G,
    gateway_timeout: Duration,
    source: Source,
}

impl<G: PaymentGateway> PaymentHandler<G> {
    pub fn new(pool: PgPool, gateway: G, gateway_timeout: Duration) -> Self {
        Self { pool, gateway, gateway_timeout, source: Source::service("payment") }
    }
}

/// What the gateway did, to be recorded.
enum Effect {
    Reply(Message),
    Authorized {
        authorization_id: String,
        amount: Money,
    },
    Declined {
        code: DeclineCode,
        detail: String,
        amount: Money,
    },
    /// The gateway did not answer in time: the outcome is unknown.
    Unanswered {
        amount: Money,
    },
    Captured {
        amount: Money,
    },
    Voided,
    Refunded {
        amount: Money,
    },
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(error) => handler_error(error),
            corrupt @ StoreError::Corrupt(_) => HandlerError::permanent(corrupt),
        }
    }
}

impl From<GatewayError> for HandlerError {
    fn from(error: GatewayError) -> Self {
        HandlerError::transient(error)
    }
}

impl<G: PaymentGateway> Handler for PaymentHandler<G> {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let envelope = &message.envelope;
        if already_processed(&self.pool, CONSUMER, envelope).await.map_err(handler_error)? {
            return Ok(());
        }
        let order = envelope.subject;
        let current = store::load(&self.pool, order).await?;
        let effect = match plan(current.as_ref(), &envelope.payload) {
            Plan::Reply(reply) => Effect::Reply(reply),
            Plan::Refuse(reason) => return Err(HandlerError::permanent(reason)),
            Plan::Authorize => match &envelope.payload {
                Message::AuthorizePayment(command) => self.authorize(order, command).await?,
                _ => return Err(HandlerError::permanent("authorize planned for a non-authorize command")),
            },
            Plan::Capture { authorization_id, amount } => {
                self.within_timeout(self.gateway.capture(&authorization_id, amount)).await?;
                Effect::Captured { amount }
            }
            Plan::Void { authorization_id } => {
                self.within_timeout(self.gateway.void(order, authorization_id.as_deref())).await?;
                Effect::Voided
            }
            Plan::Refund { authorization_id, amount } => {
                self.within_timeout(self.gateway.refund(&authorization_id, amount)).await?;
                Effect::Refunded { amount }
            }
        };
        let Some(mut work) = UnitOfWork::claim(&self.pool, CONSUMER, envelope).await.map_err(handler_error)? else {
            return Ok(());
        };
        if let Some(reply) = record(work.conn(), order, effect).await? {
            tracing::info!(reply = %reply.message_type(), "payment command handled");
            work.send(caused_by(envelope, &self.source, reply));
        }
        work.commit().await.map_err(handler_error)
    }
}

impl<G: PaymentGateway> PaymentHandler<G> {
    async fn authorize(&self, order: OrderId, command: &AuthorizePayment) -> Result<Effect, HandlerError> {
        let amount = command.amount;
        store::begin_authorization(&self.pool, order, amount).await?;
        let request = AuthorizationRequest { order_id: order, amount, card_token: command.card_token.clone() };
        match tokio::time::timeout(self.gateway_timeout, self.gateway.authorize(&request)).await {
            Err(_elapsed) => {
                tracing::warn!(
                    timeout_ms = u64::try_from(self.gateway_timeout.as_millis()).unwrap_or(u64::MAX),
                    "payment gateway did not answer; the authorization's outcome is unknown"
                );
                Ok(Effect::Unanswered { amount })
            }
            Ok(Err(error)) => Err(error.into()),
            Ok(Ok(Authorization::Approved { authorization_id })) => Ok(Effect::Authorized { authorization_id, amount }),
            Ok(Ok(Authorization::Declined { code, detail })) => Ok(Effect::Declined { code, detail, amount }),
        }
    }

    async fn within_timeout(&self, call: impl Future<Output = Result<(), GatewayError>>) -> Result<(), HandlerError> {
        match tokio::time::timeout(self.gateway_timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_elapsed) => Err(HandlerError::transient("payment gateway did not answer in time")),
        }
    }
}

/// Records what the gateway did and returns the reply to send, if any.
async fn record(conn: &mut PgConnection, order: OrderId, effect: Effect) -> Result<Option<Message>, StoreError> {
    let previous = store::lock_status(conn, order).await?;
    Ok(match effect {
        Effect::Reply(reply) => Some(reply),
        Effect::Authorized { authorization_id, amount } if previous == Some(Status::Voided) => {
            // A void overtook the call; the void at the gateway covers this approval.
            store::record_operation(
                conn,
                order,
                "authorize",
                "approved after void",
                Some(amount),
                Some(&authorization_id),
            )
            .await?;
            let detail = "the payment was voided while it was being authorized".to_owned();
            Some(PaymentDeclined { code: DeclineCode::AlreadyVoided, detail }.into())
        }
        Effect::Authorized { authorization_id, amount } => {
            store::update(conn, order, Status::Authorized, Some(&authorization_id), None).await?;
            store::record_operation(conn, order, "authorize", "approved", Some(amount), Some(&authorization_id))
                .await?;
            Some(PaymentAuthorized { authorization_id, amount }.into())
        }
        Effect::Declined { code, detail, amount } => {
            store::update(conn, order, Status::Declined, None, Some((code, &detail))).await?;
            store::record_operation(conn, order, "authorize", "declined", Some(amount), Some(&detail)).await?;
            Some(PaymentDeclined { code, detail }.into())
        }
        Effect::Unanswered { amount } => {
            store::record_operation(conn, order, "authorize", "no answer", Some(amount), None).await?;
            None
        }
        Effect::Captured { amount } => {
            store::update(conn, order, Status::Captured, None, None).await?;
            store::record_operation(conn, order, "capture", "captured", Some(amount), None).await?;
            Some(PaymentCaptured { amount }.into())
        }
        Effect::Voided => {
            store::update(conn, order, Status::Voided, None, None).await?;
            store::record_operation(conn, order, "void", "voided", None, None).await?;
            Some(PaymentVoided {}.into())
        }
        Effect::Refunded { amount } => {
            store::update(conn, order, Status::Refunded, None, None).await?;
            store::record_operation(conn, order, "refund", "refunded", Some(amount), None).await?;
            Some(PaymentRefunded { amount }.into())
        }
    })
}
