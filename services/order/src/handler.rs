//! The orchestrator's commands to the order, and its progress reports: each
//! appends to the order's stream and publishes what it announces, in one
//! transaction.

use checkout_domain::OrderId;
use checkout_kafka::{HandlerError, Incoming};
use checkout_messages::payloads::order::{OrderCancelled, OrderConfirmed};
use checkout_messages::{Envelope, Message, Source, Topic};
use checkout_outbox::{Apply, UnitOfWork, caused_by};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::domain::{Order, OrderEvent};
use crate::store::{self, Lineage, Refusal, StoreError};

/// The order service's name in the inbox.
const CONSUMER: &str = "order";

/// Confirms and cancels orders for the orchestrator, and keeps each order's
/// saga timeline from `SagaStepRecorded` (folding each report into the read
/// model in the same transaction).
#[derive(Debug, Clone)]
pub struct OrderHandler {
    pool: PgPool,
    source: Source,
}

impl OrderHandler {
    pub fn new(pool: PgPool) -> Self {
        checkout_outbox::inbox::describe(CONSUMER);
        Self { pool, source: Source::service("order") }
    }
}

/// Loads the order, locked, folded from its stream.
pub(crate) async fn load_locked(work: &mut UnitOfWork, order: OrderId) -> Result<Option<Order>, StoreError> {
    if store::lock(work.conn(), order).await?.is_none() {
        return Ok(None);
    }
    let events = store::events(work.conn(), order, None).await?;
    Order::fold(order, &events).map_err(|source| StoreError::Refused(Refusal::Fold { order, source }))
}

/// The message that announces an appended event, if it is one others hear of.
pub(crate) fn announcement(event: &OrderEvent) -> Option<Message> {
    match event {
        OrderEvent::Confirmed { total } => Some(OrderConfirmed { total: *total }.into()),
        OrderEvent::Cancelled { reason } => Some(OrderCancelled { reason: reason.clone() }.into()),
        OrderEvent::CancellationRequested { reason } => {
            Some(checkout_messages::payloads::order::OrderCancellationRequested { reason: reason.clone() }.into())
        }
        OrderEvent::Placed(_) | OrderEvent::Priced { .. } | OrderEvent::StepsRecorded { .. } => None,
    }
}

impl Apply for OrderHandler {
    type Committed = ();
    type Batch = ();

    const CONSUMER: &'static str = CONSUMER;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn apply(
        &self,
        work: &mut UnitOfWork,
        (): &mut (),
        message: &Incoming,
        now: OffsetDateTime,
    ) -> Result<(), HandlerError> {
        let envelope = &message.envelope;
        let order_id = envelope.subject;
        let lineage =
            Lineage { causation_id: Some(*envelope.id.as_uuid()), correlation_id: *envelope.correlation_id.as_uuid() };
        let unknown = || HandlerError::permanent(format!("no order {order_id}"));
        if let Message::SagaStepRecorded(recorded) = &envelope.payload {
            // A report of the saga's progress is appended whatever the
            // order's state: no fold, not even the stream's version, needed.
            let event = Order::record_steps(recorded.entries().collect(), envelope.time);
            if store::append(work.conn(), order_id, lineage, &[event]).await?.is_empty() {
                return Err(unknown());
            }
            return Ok(());
        }
        let order = load_locked(work, order_id).await?.ok_or_else(unknown)?;
        let contradiction = |e| HandlerError::permanent(format!("{}: {e}", envelope.payload.message_type()));
        let (events, repeat): (Vec<OrderEvent>, Option<Message>) = match &envelope.payload {
            Message::ConfirmOrder(command) => {
                let events = order.confirm(&command.pricing).map_err(contradiction)?;
                (events, Some(OrderConfirmed { total: command.pricing.total() }.into()))
            }
            Message::CancelOrder(command) => {
                let events = order.cancel(&command.reason, command.pricing.as_ref()).map_err(contradiction)?;
                (events, Some(OrderCancelled { reason: command.reason.clone() }.into()))
            }
            other => {
                return Err(HandlerError::permanent(format!("{} is not an order command", other.message_type())));
            }
        };
        if events.is_empty() {
            // A repeated command: answer it again, change nothing.
            if let Some(reply) = repeat {
                work.send(caused_by(envelope, &self.source, now, reply));
            }
            return Ok(());
        }
        let sequences = store::append(work.conn(), order_id, lineage, &events).await?;
        for (event, sequence) in events.iter().zip(sequences) {
            match event {
                OrderEvent::Confirmed { .. } => tracing::info!("order confirmed"),
                OrderEvent::Cancelled { reason } => {
                    tracing::info!(cancellation.code = reason.code.as_str(), "order cancelled");
                }
                _ => {}
            }
            if let Some(announced) = announcement(event) {
                work.send(announce(envelope, &self.source, now, announced, sequence));
            }
        }
        Ok(())
    }

    /// Every record of `orchestrator.events`, a redelivered one too, is
    /// folded into the read model, which records how far it has read: a
    /// batch's in two statements.
    async fn observe(
        &self,
        work: &mut UnitOfWork,
        messages: &[&Incoming],
        now: OffsetDateTime,
    ) -> Result<(), HandlerError> {
        let reports = messages
            .iter()
            .filter(|message| message.envelope.payload.message_type().topic() == Topic::OrchestratorEvents);
        crate::read_model::project_live(work.conn(), reports, now).await
    }
}

fn announce(
    cause: &Envelope<Message>,
    source: &Source,
    now: OffsetDateTime,
    payload: Message,
    sequence: u64,
) -> Envelope<Message> {
    caused_by(cause, source, now, payload).at_sequence(sequence)
}
