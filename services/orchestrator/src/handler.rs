use std::collections::HashMap;
use std::sync::Arc;

use checkout_domain::OrderId;
use checkout_kafka::{HandlerError, Incoming};
use checkout_messages::payloads::order::OrderPlaced;
use checkout_messages::{CorrelationId, Message, MessageId, Source};
use checkout_outbox::{Apply, Claim, InboxRows, UnitOfWork, claim_of, handler_error};
use checkout_saga::{Input, Saga, SagaPolicy};
use sqlx::PgPool;
use time::OffsetDateTime;
use tracing::Instrument;
use tracing::field::Empty;

use crate::engine::{self, Cause, Moved};
use crate::held::{Held, Holding};
use crate::store::{self, CONSUMER, Pending, StoredSaga};

/// Starts a saga for each placed order and feeds it every participant's reply.
#[derive(Debug, Clone)]
pub struct SagaHandler {
    pool: PgPool,
    policy: SagaPolicy,
    source: Source,
    /// The orders of the batches being applied, shared by the handler's clones.
    held: Arc<Held>,
}

impl SagaHandler {
    pub fn new(pool: PgPool, policy: SagaPolicy) -> Self {
        checkout_outbox::inbox::describe(CONSUMER);
        Self { pool, policy, source: Source::service("orchestrator"), held: Arc::default() }
    }
}

/// The span of one decision; a child of the message's consumer span (or of
/// the saga's last span, when the timer fires), and the parent of the
/// producer spans of the commands it sends. It names the order and the
/// lineage, so every log line of the decision carries them.
pub fn transition_span(input: &str, order: OrderId, correlation: CorrelationId, causation: MessageId) -> tracing::Span {
    tracing::info_span!(
        "saga.transition",
        otel.name = %format!("saga {input}"),
        saga.input = input,
        saga.status = Empty,
        saga.step = Empty,
        saga.compensating = Empty,
        order.id = %order,
        correlation.id = %correlation,
        causation.id = %causation,
    )
}

/// What a message means to the orchestrator.
enum Received<'a> {
    Placed(&'a OrderPlaced),
    Input(Input),
}

/// The sagas a batch's messages are for, each as the messages applied so
/// far left it (with the version it was read at); the messages new to the
/// inbox, to claim; and the transitions to write.
#[derive(Debug, Default)]
pub struct Sagas {
    current: HashMap<OrderId, StoredSaga>,
    claims: InboxRows,
    pending: Vec<Pending>,
    /// Its orders, held in this process until the batch is written or given up.
    holding: Option<Holding>,
}

impl Apply for SagaHandler {
    /// The saga's move, counted once it is durable.
    type Committed = Option<Moved>;
    type Batch = Sagas;

    const CONSUMER: &'static str = CONSUMER;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Optimistic: no transaction, no lock held in the database while the
    /// saga decides. A batch costs two statements (a read, a guarded write)
    /// instead of four with `BEGIN` and `COMMIT`. Batches of one saga in this
    /// process wait for each other (`held`); a write that lost a race to
    /// another process, the timer or an operator fails whole and the batch is
    /// applied again at once.
    async fn open(&self) -> Result<UnitOfWork, sqlx::Error> {
        UnitOfWork::autocommit(&self.pool).await
    }

    /// Holds the batch's orders in this process, then reads which messages
    /// are new and their sagas, in one statement.
    async fn claim_and_prepare(
        &self,
        work: &mut UnitOfWork,
        messages: &[&Incoming],
    ) -> Result<(Vec<Claim>, Sagas), HandlerError> {
        let envelopes: Vec<_> = messages.iter().map(|message| &message.envelope).collect();
        let ids: Vec<uuid::Uuid> = envelopes.iter().map(|envelope| *envelope.id.as_uuid()).collect();
        let orders: Vec<OrderId> = envelopes.iter().map(|envelope| envelope.subject).collect();
        let holding = self.held.hold(&orders).await;
        let (mut seen, current) = store::read(work.conn(), CONSUMER, &ids, &orders).await?;
        // New unless claimed before or earlier in this batch (a message published twice).
        let claims: Vec<Claim> = envelopes
            .iter()
            .map(|envelope| claim_of(CONSUMER, envelope, seen.insert(*envelope.id.as_uuid())))
            .collect();
        let new: Vec<_> =
            envelopes.iter().zip(&claims).filter(|(_, claim)| **claim == Claim::First).map(|(e, _)| *e).collect();
        Ok((claims, Sagas { current, claims: InboxRows::of(&new), pending: Vec::new(), holding: Some(holding) }))
    }

    /// Claims the new messages and writes every transition, every saga moved
    /// and every message sent in one statement, which fails whole if one of
    /// the messages was claimed or one of the sagas moved since the read.
    async fn flush(&self, work: &mut UnitOfWork, sagas: Sagas) -> Result<(), HandlerError> {
        let Sagas { claims, pending, holding, .. } = sagas;
        let outbox = work.take_outbox().map_err(handler_error)?;
        store::add_transitions(work.conn(), &claims, &pending, &outbox).await?;
        // Written: the next batch of these sagas may read them.
        drop(holding);
        Ok(())
    }

    async fn apply(
        &self,
        work: &mut UnitOfWork,
        sagas: &mut Sagas,
        message: &Incoming,
        now: OffsetDateTime,
    ) -> Result<Option<Moved>, HandlerError> {
        let envelope = &message.envelope;
        let received = match &envelope.payload {
            Message::OrderPlaced(placed) => Received::Placed(placed),
            other => {
                let Some(input) = Input::from_message(other) else {
                    tracing::debug!(message.type = %other.message_type(), "not a saga input; ignored");
                    return Ok(None);
                };
                Received::Input(input)
            }
        };
        let input_name = match &received {
            Received::Placed(_) => "OrderPlaced",
            Received::Input(input) => input.name(),
        };
        async {
            let order = envelope.subject;
            let existing = sagas.current.get(&order);
            let cause = Cause::message(envelope, &message.headers, existing);
            let (read, transition) = match (received, existing) {
                (Received::Placed(placed), None) => (None, Saga::start(order, placed, now, &self.policy)),
                (Received::Placed(_), Some(_)) => {
                    tracing::info!("a saga already runs for this order");
                    return Ok(None);
                }
                (Received::Input(input), Some(stored)) => (Some(stored), stored.saga.apply(&input, now, &self.policy)),
                (Received::Input(_), None) => {
                    return Err(HandlerError::permanent(format!("no saga for order {order}")));
                }
            };
            let (moved, pending) = engine::record(work, read, transition, input_name, &cause, &self.source, now);
            if let Some(saved) = &pending.saved {
                // The batch's next message for this saga finds it as this one left it.
                sagas.current.insert(order, saved.clone());
            }
            sagas.pending.push(pending);
            Ok(Some(moved))
        }
        .instrument(transition_span(input_name, envelope.subject, envelope.correlation_id, envelope.id))
        .await
    }
}

impl checkout_outbox::Committed for Moved {
    fn done(self) {
        self.count();
    }
}
