use std::sync::Arc;
use std::time::Duration;

use checkout_domain::OrderId;
use checkout_kafka::admin::{self, AdminError};
use checkout_kafka::{ConsumerStatus, KafkaSettings, RecordHeaders, partition_for_key};
use checkout_messages::{Source, Topic};
use checkout_outbox::{InboxRows, OutboxError, UnitOfWork};
use checkout_platform::{clock, periodic};
use checkout_saga::{Input, SagaPolicy, Step};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::engine::{self, Cause};
use crate::handler::transition_span;
use crate::store::{self, StoreError};

/// Most sagas woken in one transaction.
const BATCH: i64 = 50;
const BATCH_USIZE: usize = 50;
/// Most due sagas looked at per pass when deadlines are gated, so that sagas
/// held back (their partition is behind, or another member's) do not hide
/// the ones this member may wake.
const CANDIDATES: i64 = 1000;

/// The timer's report of entries a saga kept back, as its span names it
/// (like an input, though it changes nothing the saga decides).
pub const REPORT_DUE: &str = "ReportDue";

/// Wakes sagas whose step timed out.
#[derive(Debug, Clone)]
pub struct Timer {
    pool: PgPool,
    policy: SagaPolicy,
    interval: Duration,
    source: Source,
    gate: Option<Arc<DeadlineGate>>,
}

/// Holds back a deadline while its reply may still be waiting in the topic.
///
/// A step times out only if no reply was produced before its deadline. The
/// reply to a saga's step travels on the participant's event topic, keyed by
/// the order, so it is on one known partition; the deadline fires only once
/// this member owns that partition and has processed it through the
/// deadline (with two steps awaited side by side: each due step's partition,
/// through that step's own deadline). So an orchestrator (or its database, or its consumer) that was
/// down or had no partitions applies the replies that queued up meanwhile
/// before it times anything out, and with several orchestrators each wakes
/// only the sagas whose replies it consumes. A partition nobody consumes
/// times nothing out: those sagas wait, as their replies do.
#[derive(Debug)]
pub struct DeadlineGate {
    consumer: ConsumerStatus,
    kafka: KafkaSettings,
    partitions: OnceCell<i32>,
}

impl DeadlineGate {
    pub fn new(consumer: ConsumerStatus, kafka: KafkaSettings) -> Self {
        Self { consumer, kafka, partitions: OnceCell::new() }
    }

    /// A gate that knows the event topics' partition count already.
    pub fn with_partitions(consumer: ConsumerStatus, kafka: KafkaSettings, partitions: i32) -> Self {
        Self { consumer, kafka, partitions: OnceCell::new_with(Some(partitions)) }
    }

    /// The event topics' partition count (they are created alike).
    async fn partitions(&self) -> Result<i32, AdminError> {
        let topic = self.kafka.topic_names().physical(Topic::PaymentEvents);
        self.partitions.get_or_try_init(|| admin::partition_count(&self.kafka, &topic)).await.copied()
    }

    /// Whether every awaited step that is due by `now` has had its reply
    /// partition processed through its own deadline.
    fn allows(&self, due: &store::DueDeadline, partitions: i32, now: OffsetDateTime) -> bool {
        let partition = partition_for_key(due.order.to_string().as_bytes(), partitions);
        due.awaited.iter().filter(|(_, deadline)| *deadline <= now).all(|(step, deadline)| {
            // A step this build does not know is not held back.
            let Some(step) = step.as_deref().and_then(Step::parse) else { return true };
            let topic = self.kafka.topic_names().physical(reply_topic(step));
            self.consumer.processed_through(&topic, partition).is_some_and(|through| through >= *deadline)
        })
    }
}

/// The topic a step's reply comes on: its participant's events.
fn reply_topic(step: Step) -> Topic {
    match step {
        Step::ReserveInventory | Step::CommitInventory | Step::ReleaseInventory => Topic::InventoryEvents,
        Step::AuthorizePayment | Step::CapturePayment | Step::VoidPayment => Topic::PaymentEvents,
        Step::ConfirmOrder | Step::CancelOrder => Topic::OrderEvents,
        Step::NotifyCustomer | Step::NotifyCancellation => Topic::NotificationEvents,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("cannot tell where replies are: {0}")]
    Topics(#[from] AdminError),
}

impl Timer {
    pub fn new(pool: PgPool, policy: SagaPolicy, interval: Duration) -> Self {
        Self { pool, policy, interval, source: Source::service("orchestrator"), gate: None }
    }

    /// Fires a deadline only when its reply cannot be waiting (see [`DeadlineGate`]).
    #[must_use]
    pub fn gated_by(mut self, gate: DeadlineGate) -> Self {
        self.gate = Some(Arc::new(gate));
        self
    }

    /// Wakes sagas whose step timed out, and reports the timeline entries
    /// sagas kept back once they fall due, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        let deadlines =
            periodic::drain_every(self.interval, BATCH, "saga timer pass", &shutdown, || self.fire_due(clock::now()));
        let reports = periodic::drain_every(self.interval, BATCH, "saga report pass", &shutdown, || {
            self.report_due(clock::now())
        });
        tokio::try_join!(deadlines, reports).map(|_| ())
    }

    /// Reports the timeline entries of every saga that kept some back until
    /// `now`, one record per saga; returns how many it reported (or set aside
    /// because they do not decode).
    pub async fn report_due(&self, now: OffsetDateTime) -> Result<usize, TimerError> {
        let mut work = UnitOfWork::begin(&self.pool).await.map_err(OutboxError::from)?;
        let due = store::lock_reports_due(work.conn(), now, BATCH).await?;
        if due.sagas.is_empty() && due.quarantined.is_empty() {
            return Ok(0);
        }
        report_quarantined(&due);
        let reported: Vec<_> = due
            .sagas
            .iter()
            .map(|stored| {
                let cause = Cause::timer(stored);
                saga_span(REPORT_DUE, stored, &cause)
                    .in_scope(|| engine::report_kept(&mut work, stored, &cause, &self.source, now))
            })
            .collect();
        store::save_reported(work.conn(), &reported).await?;
        work.commit().await?;
        Ok(due.sagas.len() + due.quarantined.len())
    }

    /// Applies `DeadlinePassed` to every saga whose deadline passed by `now`;
    /// returns how many it woke (or set aside because they do not decode).
    pub async fn fire_due(&self, now: OffsetDateTime) -> Result<usize, TimerError> {
        let mut work = UnitOfWork::begin(&self.pool).await.map_err(OutboxError::from)?;
        let due = match &self.gate {
            None => store::lock_due(work.conn(), now, BATCH, None).await?,
            Some(gate) => {
                let partitions = gate.partitions().await?;
                let candidates = store::due_deadlines(work.conn(), now, CANDIDATES).await?;
                let (allowed, held): (Vec<_>, Vec<_>) =
                    candidates.iter().partition(|due| gate.allows(due, partitions, now));
                if !held.is_empty() {
                    tracing::debug!(held = held.len(), "deadlines held back: their replies may still be in the topic");
                    metrics::counter!("checkout_saga_deadlines_held_total").increment(held.len() as u64);
                }
                let allowed: Vec<OrderId> = allowed.iter().map(|due| due.order).take(BATCH_USIZE).collect();
                if allowed.is_empty() {
                    return Ok(0);
                }
                store::lock_due(work.conn(), now, BATCH, Some(&allowed)).await?
            }
        };
        report_quarantined(&due);
        let (mut moves, mut pending) = (Vec::with_capacity(due.sagas.len()), Vec::with_capacity(due.sagas.len()));
        for stored in &due.sagas {
            let cause = Cause::timer(stored);
            let span = saga_span(Input::DeadlinePassed.name(), stored, &cause);
            let transition = stored.saga.apply(&Input::DeadlinePassed, now, &self.policy);
            let (moved, write) = span.in_scope(|| {
                engine::record(
                    &mut work,
                    Some(stored),
                    transition,
                    Input::DeadlinePassed.name(),
                    &cause,
                    &self.source,
                    now,
                )
            });
            moves.push(moved);
            pending.push(write);
        }
        let outbox = work.take_outbox()?;
        store::add_transitions(work.conn(), &InboxRows::default(), &pending, &outbox).await?;
        work.commit().await?;
        moves.into_iter().for_each(engine::Moved::count);
        Ok(due.sagas.len() + due.quarantined.len())
    }
}

/// The span of the timer's work on one saga (`input` names it): it continues
/// the checkout's trace, as a timeout or a report belongs to the saga it is of.
fn saga_span(input: &str, stored: &store::StoredSaga, cause: &Cause) -> tracing::Span {
    let span = transition_span(input, stored.saga.order_id, cause.correlation_id, cause.causation_id);
    if let Some(traceparent) = &stored.traceparent {
        let _ = span.set_parent(RecordHeaders::context_from_traceparent(traceparent));
    }
    span
}

/// Logs and counts the rows a pass set aside because they do not decode.
fn report_quarantined(due: &store::Due) {
    for (order, reason) in &due.quarantined {
        tracing::error!(order.id = %order, %reason, "saga quarantined: its stored state does not decode");
        metrics::counter!("checkout_saga_quarantined_total").increment(1);
    }
}
