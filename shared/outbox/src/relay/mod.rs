//! Publishes committed outbox rows to Kafka.
//!
//! One relay at a time publishes from a database: the relay that takes a
//! session advisory lock on a connection of its own keeps it (a lease) for as
//! long as that connection lives, so several instances of a service can run
//! relays without interleaving one key's messages, and the holder's passes
//! need no transaction: a pass reads a batch in position order, enqueues it,
//! waits for all acknowledgements together, then marks the acknowledged rows,
//! per key only up to its first failure (the rest are published again after
//! it). Marking a row deletes it. The running relay marks at most every
//! `mark_interval`, many passes' rows in one statement (see `lease`), so under load a pass is one read,
//! where a transaction-scoped lock took five statements (`BEGIN`, lock, read,
//! mark, `COMMIT`). A crash before the mark republishes what it had not
//! marked. When the holder dies or its connection breaks, PostgreSQL
//! releases the lock and the next relay to try takes the lease over.
//! A row that can never be published is quarantined, not retried for ever.
//!
//! A transaction committed in the relay's own process hands it the rows it
//! wrote (see `handoff`), so publishing them needs no read; rows committed
//! elsewhere wake it by `NOTIFY` at commit, and it polls as a fallback. Each
//! wake-up is counted by its source; a poll that finds rows committed
//! without waking the relay means its notifications stopped arriving, and
//! after a few such polls in a row the relay says so and listens anew.

mod handoff;
mod lease;
mod run;
mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkout_kafka::{OutgoingRecord, PublishError, Publisher, TopicNames, header_names};
use checkout_messages::Topic;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

pub(crate) use self::handoff::Handoff;
pub use self::handoff::IN_PROCESS;
use self::lease::{Held, Lease, Marking, Row};
pub use self::status::RelayStatus;
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
            inbox_retention: Duration::from_hours(14 * 24),
            prune_interval: Duration::from_mins(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("outbox message {message_id} names unknown topic {topic:?}")]
    UnknownTopic { message_id: Uuid, topic: String },
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

/// What a pass publishes.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// The next batch of the table, but for the rows of `leaving_out` (those
    /// their transactions hand to this relay).
    Table { leaving_out: &'a [Uuid] },
    /// Rows their transactions handed over.
    Handed(&'a [Row]),
}

impl Source<'_> {
    const ALL: Self = Source::Table { leaving_out: &[] };
}

/// What to do after a pass.
enum Pass {
    Published {
        count: usize,
        full: bool,
        /// Rows the broker did not acknowledge.
        failed: usize,
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
    fn injected_failure(&self, position: Option<i64>) -> bool {
        position.is_some_and(|position| self.failing.lock().is_ok_and(|mut failing| failing.remove(&position)))
    }

    #[cfg(not(feature = "fault-injection"))]
    #[allow(clippy::unused_self, reason = "the same call with and without fault injection")]
    fn injected_failure(&self, _: Option<i64>) -> bool {
        false
    }

    /// Publishes one batch; returns how many rows it published (0 when the
    /// outbox is empty or another relay is publishing).
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        match self.pass(Marking::Now, Source::ALL).await? {
            Pass::Published { count, .. } => Ok(count),
            Pass::Busy => Ok(0),
        }
    }

    /// Publishes until the outbox is empty; returns how many rows it published.
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            match self.pass(Marking::Now, Source::ALL).await? {
                Pass::Published { count, full: true, .. } => total += count,
                Pass::Published { count, full: false, .. } => return Ok(total + count),
                Pass::Busy => return Ok(total),
            }
        }
    }

    /// Publishes a batch but never marks it, as if the process died between
    /// the broker's acknowledgement and the database update.
    #[cfg(feature = "fault-injection")]
    pub async fn relay_once_then_crash_before_marking(&self) -> Result<usize, RelayError> {
        match self.pass(Marking::Never, Source::ALL).await? {
            Pass::Published { count, .. } => Ok(count),
            Pass::Busy => Ok(0),
        }
    }

    /// A pass over `source`, under the lease. A relay that does not hold it
    /// tells the one that does of rows handed to it (by `NOTIFY`), which
    /// reads them from the database.
    async fn pass(&self, marking: Marking, source: Source<'_>) -> Result<Pass, RelayError> {
        let mut lease = self.lease.lock().await;
        let passed = async {
            let Some(mut held) = lease.hold(&self.pool).await? else {
                if let Source::Handed(_) = source {
                    lease.announce(&self.pool).await?;
                }
                return Ok(Pass::Busy);
            };
            let read;
            let (rows, full): (Vec<&Row>, bool) = match source {
                Source::Table { leaving_out } => {
                    read = held.next_batch(self.settings.batch_size, leaving_out).await?;
                    (read.iter().collect(), i64::try_from(read.len()).is_ok_and(|n| n >= self.settings.batch_size))
                }
                // A read of the database may have raced the handover: not twice.
                Source::Handed(rows) => (rows.iter().filter(|row| !held.unmarked(row.message_id)).collect(), false),
            };
            let (count, failed) = self.publish(&mut held, rows, marking).await?;
            Ok(Pass::Published { count, full, failed })
        }
        .await;
        if let Err(RelayError::Database(_)) = &passed {
            lease.give_up().await;
        }
        passed
    }

    /// Publishes `rows` in order and remembers (or marks) those the broker
    /// acknowledged; returns how many it published and how many failed.
    async fn publish(
        &self,
        held: &mut Held<'_>,
        rows: Vec<&Row>,
        marking: Marking,
    ) -> Result<(usize, usize), RelayError> {
        if rows.is_empty() {
            held.published(Vec::new(), marking).await?;
            return Ok((0, 0));
        }
        let began = Instant::now();
        // Enqueue the whole batch in order, then wait for the acknowledgements
        // together: one round trip per batch, not per message.
        let mut in_flight = Vec::with_capacity(rows.len());
        for &row in &rows {
            match self.record_for(row) {
                Ok((record, span)) => {
                    let delivery = self.publisher.enqueue(&record).await?;
                    in_flight.push((row, span, delivery));
                }
                // One bad row never stops the relay: set it aside and go on.
                Err(error) => {
                    let reason = error.to_string();
                    tracing::error!(outbox.message_id = %row.message_id, error = %reason, "outbox row quarantined: it can never be published");
                    held.quarantine(row.message_id, &reason).await?;
                    self.status.quarantined_one();
                }
            }
        }
        let mut published = Vec::with_capacity(rows.len());
        let mut failed = 0;
        // Keys with an unacknowledged message in this batch: their later
        // messages are not marked either, so the next pass publishes the key's
        // messages again from the failed one on, in order.
        let mut held_back: HashSet<&str> = HashSet::new();
        for (row, span, delivery) in in_flight {
            let result = delivery.await;
            let error = match &result {
                _ if self.injected_failure(row.position) => Some("injected delivery failure".to_owned()),
                Ok(_) => None,
                Err(error) => Some(error.to_string()),
            };
            match (error, result) {
                (None, Ok(delivered)) if !held_back.contains(row.message_key.as_str()) => {
                    span.record("messaging.destination.partition.id", delivered.partition);
                    span.record("messaging.kafka.offset", delivered.offset);
                    published.push(row.message_id);
                    let lag = (OffsetDateTime::now_utc() - row.created_at).as_seconds_f64();
                    metrics::histogram!("checkout_outbox_publish_lag_seconds").record(lag);
                }
                (None, _) => {
                    span.in_scope(|| {
                        tracing::debug!(
                            outbox.message_id = %row.message_id,
                            "outbox message waits for an earlier one of its key"
                        );
                    });
                }
                (Some(error), _) => {
                    failed += 1;
                    span.record("otel.status_code", "ERROR");
                    held_back.insert(row.message_key.as_str());
                    metrics::counter!("checkout_outbox_delivery_failures_total").increment(1);
                    // Left unmarked: the next pass publishes it again.
                    span.in_scope(
                        || tracing::warn!(%error, outbox.message_id = %row.message_id, "outbox message not delivered"),
                    );
                }
            }
        }
        tracing::debug!(rows = rows.len(), publish_ms = millis(began.elapsed()), "outbox relay pass");
        let count = published.len();
        metrics::counter!("checkout_outbox_published_total").increment(count as u64);
        held.published(published, marking).await?;
        Ok((count, failed))
    }

    /// The record for a row, and the producer span that publishes it: a child
    /// of the trace that wrote the row, and the parent of the consumer's span.
    fn record_for(&self, row: &Row) -> Result<(OutgoingRecord, tracing::Span), RelayError> {
        let topic = Topic::from_name(&row.topic)
            .ok_or_else(|| RelayError::UnknownTopic { message_id: row.message_id, topic: row.topic.clone() })?;
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
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
