//! The read model: a projection of `order.events` and `orchestrator.events`
//! into `order_summaries`, in its own consumer group, and how stale it is.
//! It never reads the order streams; `GET /orders` answers only from it.

mod rebuild;
mod staleness;

use checkout_kafka::{Dependency, Handler, HandlerError, Incoming, RecordPosition};
use checkout_messages::{Envelope, Message, Topic};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

pub use rebuild::{RebuildError, RebuildReport, rebuild};
pub use staleness::{Staleness, StalenessMonitor, StalenessView};

use crate::domain::Summary;
use crate::store::read_model as store;

/// The read model's consumer group.
pub const GROUP: &str = "order-read-model";

/// The topics it folds.
pub const TOPICS: [Topic; 2] = [Topic::OrderEvents, Topic::OrchestratorEvents];

#[derive(Debug, Clone)]
pub struct Projection {
    pool: PgPool,
}

impl Projection {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Folds one record into its order's row and records the position, in the
/// caller's transaction.
pub(crate) async fn project(
    conn: &mut PgConnection,
    envelope: &Envelope<Message>,
    position: &RecordPosition,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    store::hold_swap_lock_shared(conn).await?;
    if Summary::reads(&envelope.payload) {
        let order = envelope.subject;
        let mut summary = store::lock(conn, order).await?.unwrap_or_else(|| Summary::new(order));
        if summary.apply(envelope) {
            store::save(conn, &summary).await?;
        }
        let delay = (now - envelope.time).as_seconds_f64().max(0.0);
        metrics::histogram!("checkout_read_model_delay_seconds").record(delay);
    }
    store::advance(conn, &position.topic, position.partition, position.offset).await
}

/// Every failure of the projection is the database's: the row is always
/// computable from the message, so it is retried, never dead-lettered.
fn database(error: impl Into<checkout_kafka::BoxError>) -> HandlerError {
    HandlerError::transient(Dependency::Database, error)
}

impl Handler for Projection {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        // Every failure here is the database's: the row is always computable
        // from the message, so retry rather than dead-letter.
        let mut tx = self.pool.begin().await.map_err(database)?;
        project(&mut tx, &message.envelope, &message.position, checkout_platform::clock::now())
            .await
            .map_err(database)?;
        tx.commit().await.map_err(database)
    }
}
