//! The consumer-group loop.
//!
//! One dispatcher task receives records and hands each to the worker of its
//! partition. Ordering is kept per key (the order id), not per partition, the
//! way Confluent's Parallel Consumer does it: a worker processes records of
//! different keys at the same time and the records of one key strictly in
//! order, and a semaphore bounds how many records the whole consumer
//! processes at the same moment (`max_in_flight`). A worker stores the end of
//! the contiguous run of finished records (handled, or written to the
//! dead-letter topic) as its partition's offset, so a crash redelivers the
//! unfinished records and at most `partition_buffer` finished ones after the
//! first unfinished, which the inbox absorbs. Offsets are committed in the
//! background and synchronously on shutdown, after each worker has also
//! processed the records before its last finished one, so a graceful stop
//! hands the next member nothing this one handled.
//!
//! The dispatcher never waits for a worker: when a partition's backlog
//! (records received and not yet finished) reaches `partition_buffer`,
//! fetching that partition is paused until half of them are done. A key that
//! waits out a transient failure, or is just slow, therefore holds a bounded
//! number of records and stops no other key, and the consumer keeps polling
//! (so it is never evicted from its group for being slow).
//!
//! A handler that applies a batch in one transaction gets the records a
//! partition has ready together (`max_batch`); with `concurrent_batches`, a
//! coalescer puts the ready records of all partitions into as few calls as
//! that many at once allow (group commit: see `coalesce`).
//!
//! When partitions are revoked their workers finish the records in hand and
//! stop; records they had queued are fetched again by whoever owns the
//! partition next. A new worker for a partition waits for its predecessor, so
//! one process never handles two records of a key at once.

mod coalesce;
mod context;
mod lanes;
mod process;
mod workers;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use checkout_messages::{Envelope, Message, SchemaVersion};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use self::context::{RebalanceEvent, RuntimeContext};
use self::workers::Workers;
use crate::{ConsumerSettings, KafkaSettings, Publisher, RecordHeaders, TopicNames};

type GroupConsumer = StreamConsumer<RuntimeContext>;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Application logic for the records of one consumer group.
///
/// Called once per record, in order per key (records of different keys run
/// concurrently), possibly more than once for
/// the same message (redelivery, retries): handlers must be idempotent, which
/// the inbox makes easy. Returning `Ok` means the record's effects are durable.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, message: &Incoming) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Handles several records together, in the order given (one
    /// transaction for all, say; records of one key come in their order),
    /// when the consumer's `max_batch` is above 1 and several records are
    /// ready at once. `Ok` means every record's
    /// effects are durable; after an error the runtime handles each record
    /// on its own with [`handle`](Self::handle), so a bad record is
    /// dead-lettered alone. By default, one by one.
    fn handle_batch(&self, messages: &[Incoming]) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for message in messages {
                self.handle(message).await?;
            }
            Ok(())
        }
    }
}

/// A decoded record handed to a [`Handler`].
#[derive(Debug)]
pub struct Incoming {
    pub envelope: Envelope<Message>,
    /// The schema version the record was written with (already upcast).
    pub wire_version: SchemaVersion,
    pub position: RecordPosition,
    /// The record's headers as received (envelope attributes, trace context).
    pub headers: RecordHeaders,
    /// 1 on the first try, then 2, 3… while a transient failure is retried.
    pub attempt: u32,
    /// The record's processing span (a child of the context it carries). A
    /// batch handler runs each record's part under it, so that what the
    /// record causes stays in the record's trace.
    pub span: tracing::Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might succeed if tried again (database or network trouble): retried
    /// with capped backoff until it succeeds, never dead-lettered.
    #[error("{error}")]
    Transient { waits_on: Dependency, error: BoxError },
    /// Will fail the same way every time: dead-lettered at once.
    #[error("{0}")]
    Permanent(BoxError),
}

/// What a transient failure waits on: the `class` of
/// `checkout_consumer_retries_total`, so an operator sees at once whether
/// the database, the broker or a provider is away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    Database,
    Broker,
    MailServer,
    PaymentGateway,
    Other,
}

impl Dependency {
    pub const ALL: [Self; 5] = [Self::Database, Self::Broker, Self::MailServer, Self::PaymentGateway, Self::Other];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Broker => "broker",
            Self::MailServer => "mail-server",
            Self::PaymentGateway => "payment-gateway",
            Self::Other => "other",
        }
    }
}

impl HandlerError {
    pub fn transient(waits_on: Dependency, error: impl Into<BoxError>) -> Self {
        Self::Transient { waits_on, error: error.into() }
    }

    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(error.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("kafka consumer could not be created: {0}")]
    Create(#[source] KafkaError),
    #[error("could not subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        #[source]
        source: KafkaError,
    },
    #[error("final offset commit failed: {0}")]
    Commit(#[source] KafkaError),
}

/// What health checks and metrics can see of a running consumer.
#[derive(Clone, Debug, Default)]
pub struct ConsumerStatus(Arc<StatusInner>);

#[derive(Debug, Default)]
struct StatusInner {
    joined: AtomicBool,
    assigned_partitions: AtomicUsize,
    /// Records waiting out a transient failure right now.
    waiting: AtomicUsize,
    last_transient_error: std::sync::Mutex<Option<String>>,
    /// For each partition this member owns, how far it is processed.
    /// Keyed by topic, then partition, so the per-record update allocates nothing.
    progress: std::sync::Mutex<HashMap<String, HashMap<i32, PartitionProgress>>>,
    /// The client's view of its broker connections, from its last statistics.
    brokers: std::sync::Mutex<Option<BrokerConnections>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct PartitionProgress {
    /// The time up to which all its records are known to be processed
    /// (`None` until that is known).
    through: Option<OffsetDateTime>,
    /// When the oldest record received and not yet finished was produced
    /// (milliseconds since the epoch); `None` when every record received is finished.
    oldest_unfinished_ms: Option<i64>,
}

/// How many of the client's broker connections were up, and when it said so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerConnections {
    pub up: usize,
    pub known: usize,
    pub sampled: std::time::Instant,
}

impl ConsumerStatus {
    /// Whether the consumer has joined its group (it may own no partitions if
    /// the group has more members than the topics have partitions).
    pub fn joined(&self) -> bool {
        self.0.joined.load(Ordering::Relaxed)
    }

    pub fn assigned_partitions(&self) -> usize {
        self.0.assigned_partitions.load(Ordering::Relaxed)
    }

    /// How many records (at most one per key) are being retried after
    /// a transient failure, and the latest such failure.
    pub fn waiting_out_failures(&self) -> Option<(usize, String)> {
        let waiting = self.0.waiting.load(Ordering::Relaxed);
        if waiting == 0 {
            return None;
        }
        let error = self.0.last_transient_error.lock().ok().and_then(|e| e.clone()).unwrap_or_default();
        Some((waiting, error))
    }

    /// The broker connections as the client last reported them (every
    /// second); `None` before its first report.
    pub fn broker_connections(&self) -> Option<BrokerConnections> {
        self.0.brokers.lock().ok().and_then(|brokers| *brokers)
    }

    /// Records the client's report of its broker connections.
    pub fn record_broker_connections(&self, up: usize, known: usize, sampled: std::time::Instant) {
        if let Ok(mut brokers) = self.0.brokers.lock() {
            *brokers = Some(BrokerConnections { up, known, sampled });
        }
    }

    /// The time up to which every record of `topic`/`partition` produced
    /// before it has been processed by this member, if it owns the
    /// partition and knows: a record it finished was produced then, or the
    /// broker said at that time that nothing was left to process. `None`
    /// when another member (or nobody) owns the partition.
    pub fn processed_through(&self, topic: &str, partition: i32) -> Option<OffsetDateTime> {
        self.partition(topic, partition)?.through
    }

    /// When the oldest record of `topic`/`partition` this member received
    /// and has not finished was produced (milliseconds since the epoch).
    pub fn oldest_unfinished_ms(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partition(topic, partition)?.oldest_unfinished_ms
    }

    fn partition(&self, topic: &str, partition: i32) -> Option<PartitionProgress> {
        let progress = self.0.progress.lock().ok()?;
        progress.get(topic)?.get(&partition).copied()
    }

    /// Moves a partition's progress forward to `at` (never back), if owned.
    pub fn record_progress(&self, topic: &str, partition: i32, at: OffsetDateTime) {
        self.update(topic, partition, |known| {
            known.through = Some(known.through.map_or(at, |through| through.max(at)));
        });
    }

    /// The oldest record of a partition still unfinished is now the one
    /// produced at `produced_ms` (`None`: nothing is unfinished).
    pub(crate) fn record_oldest_unfinished(&self, topic: &str, partition: i32, produced_ms: Option<i64>) {
        self.update(topic, partition, |known| known.oldest_unfinished_ms = produced_ms);
    }

    fn update(&self, topic: &str, partition: i32, change: impl FnOnce(&mut PartitionProgress)) {
        if let Ok(mut progress) = self.0.progress.lock()
            && let Some(known) = progress.get_mut(topic).and_then(|partitions| partitions.get_mut(&partition))
        {
            change(known);
        }
    }

    /// The partitions this member owns now (after a rebalance).
    pub(crate) fn set_owned(&self, owned: impl IntoIterator<Item = (String, i32)>) {
        if let Ok(mut progress) = self.0.progress.lock() {
            let mut kept: HashMap<String, HashMap<i32, PartitionProgress>> = HashMap::new();
            for (topic, partition) in owned {
                let known =
                    progress.get(&topic).and_then(|partitions| partitions.get(&partition)).copied().unwrap_or_default();
                kept.entry(topic).or_default().insert(partition, known);
            }
            *progress = kept;
        }
    }

    /// Owns `topic`/`partition` from now on (tests and the runtime).
    pub fn own(&self, topic: &str, partition: i32) {
        if let Ok(mut progress) = self.0.progress.lock() {
            progress.entry(topic.to_owned()).or_default().entry(partition).or_default();
        }
    }

    /// Has joined its group with `count` partitions (the runtime, and tests).
    pub fn set_assigned(&self, count: usize) {
        self.0.assigned_partitions.store(count, Ordering::Relaxed);
        self.0.joined.store(true, Ordering::Relaxed);
    }

    pub(crate) fn start_waiting(&self) -> Waiting {
        self.0.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self.clone())
    }
}

/// One record waiting out a transient failure; counted until dropped.
pub(crate) struct Waiting(ConsumerStatus);

impl Waiting {
    pub(crate) fn report(&self, error: &str) {
        if let Ok(mut last) = (self.0).0.last_transient_error.lock() {
            *last = Some(error.to_owned());
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        (self.0).0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Registers the consumer's counters at zero, per topic and class, so that
/// they are exported (and `rate()` works) before the first event of a kind.
fn export_zeroes(group: &str, topics: &[String]) {
    for topic in topics {
        let labels = |extra: (&'static str, &'static str)| {
            [("group", group.to_owned()), ("topic", topic.clone()), (extra.0, extra.1.to_owned())]
        };
        for outcome in ["handled", "dead_lettered"] {
            metrics::counter!("checkout_consumer_records_total", &labels(("outcome", outcome))).absolute(0);
        }
        for dependency in Dependency::ALL {
            metrics::counter!("checkout_consumer_retries_total", &labels(("class", dependency.as_str()))).absolute(0);
        }
        for class in crate::ErrorClass::ALL {
            metrics::counter!("checkout_consumer_dead_lettered_total", &labels(("class", class.as_str()))).absolute(0);
        }
    }
    metrics::gauge!("checkout_consumer_paused_partitions", "group" => group.to_owned()).set(0.0);
    metrics::counter!("checkout_consumer_handler_calls_total", "group" => group.to_owned()).absolute(0);
}

/// What every worker of one consumer shares.
pub(crate) struct Shared<H> {
    pub handler: H,
    pub publisher: Publisher,
    pub topics: TopicNames,
    pub settings: ConsumerSettings,
    /// One per record being processed, across all partitions.
    pub permits: Arc<Semaphore>,
    pub status: ConsumerStatus,
    /// Present when the partitions' ready records go to the handler together
    /// (`concurrent_batches` above 0 with `max_batch` above 1).
    pub coalescer: Option<Arc<coalesce::Coalescer>>,
}

/// A consumer group member running a [`Handler`] over its topics.
pub struct ConsumerRuntime<H> {
    consumer: Arc<GroupConsumer>,
    rebalances: mpsc::UnboundedReceiver<RebalanceEvent>,
    shared: Arc<Shared<H>>,
    status: ConsumerStatus,
}

impl<H> std::fmt::Debug for ConsumerRuntime<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRuntime").field("group_id", &self.shared.settings.group_id).finish_non_exhaustive()
    }
}

impl<H: Handler> ConsumerRuntime<H> {
    /// Creates the consumer; it joins its group when [`run`](Self::run) starts.
    /// `publisher` writes dead letters.
    pub fn new(
        kafka: &KafkaSettings,
        settings: ConsumerSettings,
        publisher: Publisher,
        handler: H,
    ) -> Result<Self, ConsumerError> {
        let status = ConsumerStatus::default();
        let (events, rebalances) = mpsc::unbounded_channel();
        let context = RuntimeContext::new(events, status.clone(), settings.group_id.clone(), kafka.fetch_wait_max);
        let consumer: GroupConsumer =
            kafka.consumer_config(&settings.group_id).create_with_context(context).map_err(ConsumerError::Create)?;
        let shared = Arc::new(Shared {
            handler,
            publisher,
            topics: kafka.topic_names(),
            permits: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            coalescer: (settings.concurrent_batches > 0 && settings.max_batch > 1)
                .then(|| Arc::new(coalesce::Coalescer::new(settings.concurrent_batches, settings.max_batch))),
            settings,
            status: status.clone(),
        });
        Ok(Self { consumer: Arc::new(consumer), rebalances, shared, status })
    }

    pub fn status(&self) -> ConsumerStatus {
        self.status.clone()
    }

    /// Consumes until `shutdown` is cancelled, then lets in-flight records
    /// finish, commits their offsets and leaves the group.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ConsumerError> {
        let topics: Vec<String> = self.shared.settings.topics.iter().map(|&t| self.shared.topics.physical(t)).collect();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&names)
            .map_err(|source| ConsumerError::Subscribe { topics: topics.clone(), source })?;
        tracing::info!(consumer.group = %self.shared.settings.group_id, topics = ?topics, "consumer started");
        export_zeroes(&self.shared.settings.group_id, &topics);

        let mut workers = Workers::new(Arc::clone(&self.shared), Arc::clone(&self.consumer));
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(event) = self.rebalances.recv() => workers.apply(event),
                received = self.consumer.recv() => match received {
                    Ok(message) => {
                        // A rebalance that happened while polling for this record
                        // must be applied first, or the record could be handed to
                        // a worker that is about to be stopped.
                        while let Ok(event) = self.rebalances.try_recv() {
                            workers.apply(event);
                        }
                        workers.dispatch(message.detach());
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, consumer.group = %self.shared.settings.group_id, "kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }

        tracing::info!(consumer.group = %self.shared.settings.group_id, "consumer stopping: finishing in-flight records");
        workers.stop_all().await;
        let consumer = self.consumer;
        let result = tokio::task::spawn_blocking(move || {
            let committed = match consumer.commit_consumer_state(CommitMode::Sync) {
                // Nothing was processed since the last commit.
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
                other => other,
            };
            // Dropping the last reference closes the consumer: it leaves the group.
            drop(consumer);
            committed
        })
        .await;
        tracing::info!(consumer.group = %self.shared.settings.group_id, "consumer stopped");
        match result {
            Ok(committed) => committed.map_err(ConsumerError::Commit),
            Err(_) => Ok(()),
        }
    }
}
