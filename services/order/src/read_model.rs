//! The read model: a projection of `order.events` and `orchestrator.events`
//! into `order_summaries`, and how stale it is. Its own consumer group folds
//! `order.events`; the saga's step reports on `orchestrator.events` are
//! folded by the order handler, in the transaction that appends them to the
//! order's stream, so that each report is read and handled once, not twice.
//! It never reads the order streams; `GET /orders` answers only from it.

mod rebuild;
mod staleness;

use checkout_kafka::{Dependency, Handler, HandlerError, Incoming, RecordPosition};
use checkout_messages::{Envelope, Message, Topic};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use checkout_domain::OrderId;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

pub use rebuild::{RebuildError, RebuildReport, rebuild};
pub use staleness::{Staleness, StalenessMonitor, StalenessView};

use crate::domain::Summary;
use crate::store::read_model as store;

/// The read model's consumer group.
pub const GROUP: &str = "order-read-model";

/// The topics it folds (a rebuild replays them all).
pub const TOPICS: [Topic; 2] = [Topic::OrderEvents, Topic::OrchestratorEvents];

/// The topics its own consumer group reads; the order handler folds the rest.
pub const OWN_TOPICS: [Topic; 1] = [Topic::OrderEvents];

#[derive(Debug, Clone)]
pub struct Projection {
    pool: PgPool,
}

impl Projection {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Folds records into their orders' rows and records how far each
/// partition is read, in the caller's transaction: one statement that locks
/// the rows concerned and one that writes those that changed and the
/// positions, however many records. `now` (when the records are live, not
/// replayed) measures each record's delay.
pub(crate) async fn project<'a>(
    conn: &mut PgConnection,
    records: impl IntoIterator<Item = (&'a Envelope<Message>, &'a RecordPosition)>,
    now: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    let records: Vec<_> = records.into_iter().collect();
    let read: Vec<OrderId> =
        records.iter().filter(|(envelope, _)| Summary::reads(&envelope.payload)).map(|(e, _)| e.subject).collect();
    let mut summaries = if read.is_empty() { HashMap::new() } else { store::lock_all(conn, &read).await? };
    let mut changed = BTreeSet::new();
    let mut positions: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for (envelope, position) in &records {
        if Summary::reads(&envelope.payload) {
            let order = envelope.subject;
            if summaries.entry(order).or_insert_with(|| Summary::new(order)).apply(envelope) {
                changed.insert(order);
            }
            if let Some(now) = now {
                let delay = (now - envelope.time).as_seconds_f64().max(0.0);
                metrics::histogram!("checkout_read_model_delay_seconds").record(delay);
            }
        }
        let read_to = positions.entry((position.topic.as_str(), position.partition)).or_insert(position.offset);
        *read_to = (*read_to).max(position.offset);
    }
    let read_to: Vec<(&str, i32, i64)> =
        positions.into_iter().map(|((topic, partition), offset)| (topic, partition, offset)).collect();
    let changed: Vec<&Summary> = changed.iter().filter_map(|order| summaries.get(order)).collect();
    if changed.is_empty() {
        // Only the positions' table: a statement that also named the
        // summaries could lock the two tables in the other order than a
        // rebuild's swap (see `store::lock_live_tables`).
        store::advance(conn, &read_to).await
    } else {
        store::save(conn, &changed, &read_to).await
    }
}

/// Folds delivered records in the caller's transaction (see `project`);
/// none is no statement.
pub(crate) async fn project_live<'a>(
    conn: &mut PgConnection,
    messages: impl IntoIterator<Item = &'a &'a Incoming>,
    now: OffsetDateTime,
) -> Result<(), HandlerError> {
    let records: Vec<_> = messages.into_iter().map(|message| (&message.envelope, &message.position)).collect();
    if records.is_empty() {
        return Ok(());
    }
    project(conn, records, Some(now)).await.map_err(database)
}

/// Every failure of the projection is the database's: the row is always
/// computable from the message, so it is retried, never dead-lettered.
fn database(error: impl Into<checkout_kafka::BoxError>) -> HandlerError {
    HandlerError::transient(Dependency::Database, error)
}

impl Handler for Projection {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(message)).await
    }

    /// One transaction for the records a partition has ready (see `project`).
    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        // Every failure here is the database's: the row is always computable
        // from the message, so retry rather than dead-letter.
        let mut tx = self.pool.begin().await.map_err(database)?;
        let records = messages.iter().map(|message| (&message.envelope, &message.position));
        project(&mut tx, records, Some(checkout_platform::clock::now())).await.map_err(database)?;
        tx.commit().await.map_err(database)
    }
}
