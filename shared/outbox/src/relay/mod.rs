//! Publishes committed outbox rows to Kafka.
//!
//! One relay at a time publishes from a database: the relay that takes a
//! session advisory lock on a connection of its own keeps it (a lease) for as
//! long as that connection lives, so several instances of a service can run
//! relays without interleaving one key's messages, and the holder's passes
//! need no transaction: a pass reads a batch in position order, enqueues it,
//! waits for all acknowledgements together, then marks the acknowledged rows,
//! per key only up to its first failure (the rest are published again after
//! it). The running relay marks at most every `mark_interval`, many passes'
//! rows in one statement (see `lease`), so under load a pass is one read,
//! where a transaction-scoped lock took five statements (`BEGIN`, lock, read,
//! mark, `COMMIT`). A crash before the mark republishes what it had not
//! marked. When the holder dies or its connection breaks, PostgreSQL
//! releases the lock and the next relay to try takes the lease over.
//! A row that can never be published is quarantined, not retried for ever.
//!
//! The relay is woken by `NOTIFY` at commit and polls as a fallback. Each
//! wake-up is counted by its source; a poll that finds rows committed
//! without waking the relay means its notifications stopped arriving, and
//! after a few such polls in a row the relay says so and listens anew.

mod lease;
mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkout_kafka::{OutgoingRecord, PublishError, Publisher, TopicNames, header_names};
use checkout_messages::Topic;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use self::lease::{Lease, Marking, Row};
pub use self::status::RelayStatus;
use self::status::Wake;
use crate::listen::Listener;
use crate::writer::headers_from_json;

/// The channel the outbox trigger notifies on commit.
const CHANNEL: &str = "outbox_messages";
/// Advisory lock held by the relay publishing from a database.
const RELAY_LOCK: i64 = 0x6f75_7462_6f78; // "outbox"

#[derive(Clone, Debug)]
pub struct RelaySettings {
    /// Most rows published per pass.
    pub batch_size: i64,
    /// Fallback poll, for notifications lost while the listener reconnects.
    pub poll_interval: Duration,
    /// How long the running relay lets rows it published wait before it
    /// marks them, to mark many in one commit (a crash meanwhile publishes
    /// them again). `relay_once` and `drain` mark at once.
    pub mark_interval: Duration,
    /// Published rows are kept this long for inspection, then deleted.
    pub published_retention: Duration,
    /// Inbox rows are kept this long: longer than any redelivery can come late.
    pub inbox_retention: Duration,
    pub prune_interval: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            mark_interval: Duration::from_millis(100),
            published_retention: Duration::from_hours(24),
            inbox_retention: Duration::from_hours(14 * 24),
            prune_interval: Duration::from_mins(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("outbox row {position} names unknown topic {topic:?}")]
    UnknownTopic { position: i64, topic: String },
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// What waits in an outbox: rows committed and not yet marked published
/// (those set aside as unpublishable not counted; a published row counts
/// until the relay marks it, within `mark_interval`), and the age of the
/// oldest, by the database's clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backlog {
    pub rows: i64,
    pub oldest_age: Option<Duration>,
}

impl Backlog {
    /// Reads the backlog (an index-only count over the unpublished rows).
    pub async fn read(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let row = sqlx::query!(
            r#"SELECT count(*) AS "rows!", EXTRACT(EPOCH FROM now() - min(created_at))::FLOAT8 AS oldest_age_seconds
               FROM outbox_messages WHERE published_at IS NULL AND quarantined_at IS NULL"#,
        )
        .fetch_one(pool)
        .await?;
        let oldest_age = row.oldest_age_seconds.and_then(|seconds| Duration::try_from_secs_f64(seconds.max(0.0)).ok());
        Ok(Self { rows: row.rows, oldest_age })
    }

    /// Sets `checkout_outbox_backlog_rows` and `checkout_outbox_oldest_unsent_age_seconds`.
    pub fn export(self) {
        // Counts this large are not exact in f64 anyway.
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("checkout_outbox_backlog_rows").set(self.rows as f64);
        metrics::gauge!("checkout_outbox_oldest_unsent_age_seconds")
            .set(self.oldest_age.map_or(0.0, |age| age.as_secs_f64()));
    }
}

/// Publishes the outbox of one service database.
#[derive(Clone, Debug)]
pub struct OutboxRelay {
    pool: PgPool,
    publisher: Publisher,
    topics: TopicNames,
    settings: RelaySettings,
    status: RelayStatus,
    lease: Arc<Mutex<Lease>>,
    /// Positions whose delivery a test makes fail.
    #[cfg(feature = "fault-injection")]
    failing: Arc<std::sync::Mutex<HashSet<i64>>>,
}

/// What to do after a pass.
enum Pass {
    Published {
        count: usize,
        full: bool,
    },
    /// Another relay holds the lock.
    Busy,
}

impl OutboxRelay {
    pub fn new(pool: PgPool, publisher: Publisher, topics: TopicNames, settings: RelaySettings) -> Self {
        Self {
            pool,
            publisher,
            topics,
            settings,
            status: RelayStatus::default(),
            lease: Arc::default(),
            #[cfg(feature = "fault-injection")]
            failing: Arc::default(),
        }
    }

    pub fn status(&self) -> RelayStatus {
        self.status.clone()
    }

    /// Makes the broker's acknowledgement of the row at `position` count as
    /// a failed delivery, once.
    #[cfg(feature = "fault-injection")]
    pub fn fail_delivery_of(&self, position: i64) {
        if let Ok(mut failing) = self.failing.lock() {
            failing.insert(position);
        }
    }

    #[cfg(feature = "fault-injection")]
    fn injected_failure(&self, position: i64) -> bool {
        self.failing.lock().is_ok_and(|mut failing| failing.remove(&position))
    }

    #[cfg(not(feature = "fault-injection"))]
    #[allow(clippy::unused_self, reason = "the same call with and without fault injection")]
    fn injected_failure(&self, _: i64) -> bool {
        false
    }

    /// Publishes one batch; returns how many rows it published (0 when the
    /// outbox is empty or another relay is publishing).
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        match self.pass(Marking::Now).await? {
            Pass::Published { count, .. } => Ok(count),
            Pass::Busy => Ok(0),
        }
    }

    /// Publishes until the outbox is empty; returns how many rows it published.
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            match self.pass(Marking::Now).await? {
                Pass::Published { count, full: true } => total += count,
                Pass::Published { count, full: false } => return Ok(total + count),
                Pass::Busy => return Ok(total),
            }
        }
    }

    /// Publishes a batch but never marks it, as if the process died between
    /// the broker's acknowledgement and the database update.
    #[cfg(feature = "fault-injection")]
    pub async fn relay_once_then_crash_before_marking(&self) -> Result<usize, RelayError> {
        match self.pass(Marking::Never).await? {
            Pass::Published { count, .. } => Ok(count),
            Pass::Busy => Ok(0),
        }
    }

    async fn pass(&self, marking: Marking) -> Result<Pass, RelayError> {
        let mut lease = self.lease.lock().await;
        let passed = self.pass_on(&mut lease, marking).await;
        if let Err(RelayError::Database(_)) = &passed {
            lease.give_up().await;
        }
        passed
    }

    async fn pass_on(&self, lease: &mut Lease, marking: Marking) -> Result<Pass, RelayError> {
        let began = Instant::now();
        let Some(mut held) = lease.hold(&self.pool).await? else {
            return Ok(Pass::Busy);
        };
        let rows = held.next_batch(self.settings.batch_size).await?;
        if rows.is_empty() {
            held.published(Vec::new(), marking).await?;
            return Ok(Pass::Published { count: 0, full: false });
        }

        // Enqueue the whole batch in order, then wait for the acknowledgements
        // together: one round trip per batch, not per message.
        let publishing = Instant::now();
        let mut in_flight = Vec::with_capacity(rows.len());
        for row in &rows {
            match self.record_for(row) {
                Ok((record, span)) => {
                    let delivery = self.publisher.enqueue(&record).await?;
                    in_flight.push((row, span, delivery));
                }
                // One bad row never stops the relay: set it aside and go on.
                Err(error) => {
                    let reason = error.to_string();
                    tracing::error!(outbox.position = row.position, error = %reason, "outbox row quarantined: it can never be published");
                    held.quarantine(row.position, &reason).await?;
                    self.status.quarantined_one();
                }
            }
        }
        let mut published = Vec::with_capacity(rows.len());
        // Keys with an unacknowledged message in this batch: their later
        // messages are not marked either, so the next pass publishes the key's
        // messages again from the failed one on, in order.
        let mut held_back: HashSet<&str> = HashSet::new();
        for (row, span, delivery) in in_flight {
            let result = delivery.await;
            let failed = match &result {
                _ if self.injected_failure(row.position) => Some("injected delivery failure".to_owned()),
                Ok(_) => None,
                Err(error) => Some(error.to_string()),
            };
            match (failed, result) {
                (None, Ok(delivered)) if !held_back.contains(row.message_key.as_str()) => {
                    span.record("messaging.destination.partition.id", delivered.partition);
                    span.record("messaging.kafka.offset", delivered.offset);
                    published.push(row.position);
                    let lag = (OffsetDateTime::now_utc() - row.created_at).as_seconds_f64();
                    metrics::histogram!("checkout_outbox_publish_lag_seconds").record(lag);
                }
                (None, _) => {
                    span.in_scope(|| {
                        tracing::debug!(
                            outbox.position = row.position,
                            "outbox message waits for an earlier one of its key"
                        );
                    });
                }
                (Some(error), _) => {
                    span.record("otel.status_code", "ERROR");
                    held_back.insert(row.message_key.as_str());
                    metrics::counter!("checkout_outbox_delivery_failures_total").increment(1);
                    // Left unmarked: the next pass publishes it again.
                    span.in_scope(
                        || tracing::warn!(%error, outbox.position = row.position, "outbox message not delivered"),
                    );
                }
            }
        }
        let published_in = publishing.elapsed();
        tracing::debug!(
            rows = rows.len(),
            publish_ms = millis(published_in),
            pass_ms = millis(began.elapsed()),
            "outbox relay pass"
        );
        let count = published.len();
        metrics::counter!("checkout_outbox_published_total").increment(count as u64);
        held.published(published, marking).await?;
        let full = i64::try_from(rows.len()).is_ok_and(|n| n >= self.settings.batch_size);
        Ok(Pass::Published { count, full })
    }

    /// The record for a row, and the producer span that publishes it: a child
    /// of the trace that wrote the row, and the parent of the consumer's span.
    fn record_for(&self, row: &Row) -> Result<(OutgoingRecord, tracing::Span), RelayError> {
        let topic = Topic::from_name(&row.topic)
            .ok_or_else(|| RelayError::UnknownTopic { position: row.position, topic: row.topic.clone() })?;
        let physical = self.topics.physical(topic);
        let mut headers = headers_from_json(&row.headers);
        let span = tracing::info_span!(
            "kafka.publish",
            otel.name = %format!("send {physical}"),
            otel.kind = "producer",
            otel.status_code = Empty,
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.destination.name = %physical,
            messaging.destination.partition.id = Empty,
            messaging.kafka.offset = Empty,
            messaging.message.id = %row.message_id,
            message.type = headers.get_str(header_names::TYPE).unwrap_or_default(),
            message.schema_version = headers.get_str(header_names::SCHEMA_VERSION).unwrap_or_default(),
            order.id = %row.message_key,
            correlation.id = headers.get_str(header_names::CORRELATION_ID).unwrap_or_default(),
            causation.id = headers.get_str(header_names::CAUSATION_ID).unwrap_or_default(),
        );
        let _ = span.set_parent(headers.trace_context());
        headers.inject_trace_context(&span.context());
        let record = OutgoingRecord {
            topic: physical,
            key: Some(row.message_key.clone().into_bytes()),
            payload: row.payload.clone(),
            headers,
        };
        Ok((record, span))
    }

    /// Publishes as rows commit until `shutdown`, then flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) {
        RelayStatus::export_zeroes();
        if let Err(error) = self.publisher.warm_up(Duration::from_secs(10)).await {
            tracing::warn!(%error, "producer warm-up failed; the first publish will wait for metadata");
        }
        // Each notification (and each fresh start of listening, in case one
        // was missed meanwhile) wakes the relay.
        let woken = Arc::new(Notify::new());
        let listener = Listener::spawn(&self.pool, CHANNEL, shutdown.clone(), {
            let woken = Arc::clone(&woken);
            move |_| woken.notify_one()
        });
        let mut last_prune = Instant::now();
        let mut failures = 0_u32;
        let mut wake = Wake::Start;
        let mut missed_in_a_row = 0_u32;
        loop {
            match self.drain_reporting().await {
                Ok((busy, published)) => {
                    metrics::counter!("checkout_outbox_relay_passes_total", "result" => "ok").increment(1);
                    failures = 0;
                    if busy {
                        tracing::trace!("another relay holds this database's outbox");
                    }
                    if self.status.unannounced(wake, published, listener.is_listening(), &mut missed_in_a_row) {
                        tracing::warn!(
                            missed = missed_in_a_row,
                            "outbox relay is not being woken by notifications: rows were found only by polling; listening anew"
                        );
                        self.status.relistened();
                        missed_in_a_row = 0;
                        listener.relisten();
                    }
                }
                Err(error) => {
                    metrics::counter!("checkout_outbox_relay_passes_total", "result" => "failed").increment(1);
                    failures += 1;
                    tracing::warn!(%error, failures, "outbox relay pass failed; retrying");
                }
            }
            if last_prune.elapsed() >= self.settings.prune_interval {
                self.prune().await;
                last_prune = Instant::now();
            }
            // After a failure, wait for the poll interval (longer after
            // repeated failures), not for a notification that may never come.
            // While another relay holds the lock, listen as usual: it
            // publishes what it found, its own listener hears of rows
            // committed meanwhile, and the next notification tries again.
            let failing = failures > 0;
            let wait =
                if failing { self.settings.poll_interval * failures.clamp(1, 10) } else { self.settings.poll_interval };
            let Some(woke) = self.wait(&shutdown, &woken, failing, wait).await else { break };
            wake = woke;
            self.status.woke(wake);
        }
        if let Err(error) = self.lease.lock().await.mark().await {
            tracing::warn!(%error, "marking published outbox rows on shutdown failed; they will be published again");
        }
        if let Err(error) = self.publisher.flush(Duration::from_secs(10)).await {
            tracing::warn!(%error, "producer flush on shutdown failed");
        }
        tracing::info!("outbox relay stopped");
    }

    /// Waits for a notification (unless `failing`), or `wait`, marking what
    /// was published whenever it falls due meanwhile; `None` at shutdown.
    async fn wait(&self, shutdown: &CancellationToken, woken: &Notify, failing: bool, wait: Duration) -> Option<Wake> {
        let poll_at = tokio::time::Instant::now() + wait;
        loop {
            let marks_due = self.lease.lock().await.marks_due_in(self.settings.mark_interval);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                () = woken.notified(), if !failing => return Some(Wake::Notification),
                () = tokio::time::sleep_until(poll_at) => return Some(Wake::Poll),
                () = tokio::time::sleep(marks_due.unwrap_or_default()), if marks_due.is_some() => {
                    let mut lease = self.lease.lock().await;
                    if let Err(error) = lease.mark().await {
                        tracing::warn!(%error, "marking published outbox rows failed; they will be published again");
                        lease.give_up().await;
                    }
                }
            }
        }
    }

    /// Drains the outbox, marking what it published when that falls due;
    /// returns whether another relay was busy, and how many rows were
    /// published.
    async fn drain_reporting(&self) -> Result<(bool, usize), RelayError> {
        let marking = Marking::WhenDue {
            interval: self.settings.mark_interval,
            batch: usize::try_from(self.settings.batch_size).unwrap_or(usize::MAX),
        };
        let mut published = 0;
        loop {
            match self.pass(marking).await? {
                Pass::Published { count, full: true } => published += count,
                Pass::Published { count, full: false } => return Ok((false, published + count)),
                Pass::Busy => return Ok((true, published)),
            }
        }
    }

    async fn prune(&self) {
        let now = OffsetDateTime::now_utc();
        let outbox_cutoff = now - self.settings.published_retention;
        let inbox_cutoff = now - self.settings.inbox_retention;
        let pruned = async {
            let outbox = sqlx::query!("DELETE FROM outbox_messages WHERE published_at < $1", outbox_cutoff)
                .execute(&self.pool)
                .await?
                .rows_affected();
            let inbox = sqlx::query!("DELETE FROM inbox_messages WHERE processed_at < $1", inbox_cutoff)
                .execute(&self.pool)
                .await?
                .rows_affected();
            Ok::<_, sqlx::Error>((outbox, inbox))
        };
        match pruned.await {
            Ok((outbox, inbox)) => tracing::debug!(outbox, inbox, "pruned old outbox and inbox rows"),
            Err(error) => tracing::warn!(%error, "pruning outbox and inbox failed"),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
