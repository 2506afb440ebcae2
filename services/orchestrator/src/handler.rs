use checkout_domain::OrderId;
use checkout_kafka::{HandlerError, Incoming};
use checkout_messages::payloads::order::OrderPlaced;
use checkout_messages::{CorrelationId, Message, MessageId, Source};
use checkout_outbox::{Apply, UnitOfWork};
use checkout_saga::{Input, Saga, SagaPolicy};
use sqlx::PgPool;
use time::OffsetDateTime;
use tracing::Instrument;
use tracing::field::Empty;

use crate::engine::{self, Cause, Moved};
use crate::store;

/// The orchestrator's name in the inbox.
const CONSUMER: &str = "orchestrator";

/// Starts a saga for each placed order and feeds it every participant's reply.
#[derive(Debug, Clone)]
pub struct SagaHandler {
    pool: PgPool,
    policy: SagaPolicy,
    source: Source,
}

impl SagaHandler {
    pub fn new(pool: PgPool, policy: SagaPolicy) -> Self {
        checkout_outbox::inbox::describe(CONSUMER);
        Self { pool, policy, source: Source::service("orchestrator") }
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

impl Apply for SagaHandler {
    /// The saga's move, counted once it is durable.
    type Committed = Option<Moved>;

    const CONSUMER: &'static str = CONSUMER;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn apply(
        &self,
        work: &mut UnitOfWork,
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
            let existing = store::lock(work.conn(), order).await?;
            let cause = Cause::message(envelope, &message.headers, existing.as_ref());
            let (from, transition) = match (received, existing) {
                (Received::Placed(placed), None) => (None, Saga::start(order, placed, now, &self.policy)),
                (Received::Placed(_), Some(_)) => {
                    tracing::info!("a saga already runs for this order");
                    return Ok(None);
                }
                (Received::Input(input), Some(stored)) => {
                    (Some(stored.saga.status()), stored.saga.apply(&input, now, &self.policy))
                }
                (Received::Input(_), None) => {
                    return Err(HandlerError::permanent(format!("no saga for order {order}")));
                }
            };
            Ok(Some(engine::record(work, from, transition, input_name, cause, &self.source, now).await?))
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
