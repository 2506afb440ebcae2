use checkout_kafka::{Handler, HandlerError, Incoming};
use checkout_messages::payloads::order::{OrderCancelled, OrderConfirmed};
use checkout_messages::{Message, Source};
use checkout_outbox::{UnitOfWork, caused_by, handler_error};
use sqlx::PgPool;

use crate::store::{self, Status};

/// The order service's name in the inbox.
const CONSUMER: &str = "order";

/// Confirms and cancels orders for the orchestrator, and keeps each order's
/// saga timeline from `SagaStepRecorded`.
#[derive(Debug, Clone)]
pub struct OrderHandler {
    pool: PgPool,
    source: Source,
}

impl OrderHandler {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, source: Source::service("order") }
    }
}

impl Handler for OrderHandler {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let envelope = &message.envelope;
        let order = envelope.subject;
        let Some(mut work) = UnitOfWork::claim(&self.pool, CONSUMER, envelope).await.map_err(handler_error)? else {
            return Ok(());
        };
        if let Message::SagaStepRecorded(entry) = &envelope.payload {
            store::add_to_timeline(work.conn(), *envelope.id.as_uuid(), order, entry, envelope.time)
                .await
                .map_err(handler_error)?;
            return work.commit().await.map_err(handler_error);
        }
        let status = store::lock_status(work.conn(), order)
            .await
            .map_err(handler_error)?
            .ok_or_else(|| HandlerError::permanent(format!("no order {order}")))?;
        let reply: Message = match (&envelope.payload, status) {
            (Message::ConfirmOrder(command), Status::Pending) => {
                store::set_pricing(work.conn(), order, &command.pricing).await.map_err(handler_error)?;
                store::confirm(work.conn(), order).await.map_err(handler_error)?;
                tracing::info!("order confirmed");
                OrderConfirmed { total: command.pricing.total() }.into()
            }
            (Message::ConfirmOrder(command), Status::Confirmed) => {
                OrderConfirmed { total: command.pricing.total() }.into()
            }
            (Message::CancelOrder(command), Status::Pending) => {
                if let Some(pricing) = &command.pricing {
                    store::set_pricing(work.conn(), order, pricing).await.map_err(handler_error)?;
                }
                store::cancel(work.conn(), order, &command.reason).await.map_err(handler_error)?;
                tracing::info!(cancellation.code = command.reason.code.as_str(), "order cancelled");
                OrderCancelled { reason: command.reason.clone() }.into()
            }
            (Message::CancelOrder(command), Status::Cancelled) => {
                OrderCancelled { reason: command.reason.clone() }.into()
            }
            (Message::ConfirmOrder(_) | Message::CancelOrder(_), status) => {
                return Err(HandlerError::permanent(format!(
                    "{} contradicts the order, which is {}",
                    envelope.payload.message_type(),
                    status.as_str()
                )));
            }
            (other, _) => {
                return Err(HandlerError::permanent(format!("{} is not an order command", other.message_type())));
            }
        };
        work.send(caused_by(envelope, &self.source, reply));
        work.commit().await.map_err(handler_error)
    }
}
