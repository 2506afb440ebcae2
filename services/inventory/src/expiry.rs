use std::time::Duration;

use checkout_kafka::RecordHeaders;
use checkout_messages::payloads::inventory::InventoryReservationExpired;
use checkout_messages::{CorrelationId, Envelope, MessageId, Source};
use checkout_outbox::{OutboxError, UnitOfWork, new_message_id};
use checkout_platform::periodic;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::store::{self, StoreError};

/// Most reservations expired in one transaction.
const BATCH: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// Releases reservations whose time ran out and tells the orchestrator.
#[derive(Debug, Clone)]
pub struct Sweeper {
    pool: PgPool,
    interval: Duration,
    source: Source,
}

impl Sweeper {
    pub fn new(pool: PgPool, interval: Duration) -> Self {
        Self { pool, interval, source: Source::service("inventory") }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        metrics::counter!("checkout_inventory_reservations_quarantined_total").absolute(0);
        periodic::drain_every(self.interval, BATCH, "reservation expiry sweep", &shutdown, || {
            self.sweep_once(checkout_platform::clock::now())
        })
        .await
    }

    /// Expires one batch of reservations whose time ran out by `now`; returns
    /// how many it released or set aside.
    pub async fn sweep_once(&self, now: OffsetDateTime) -> Result<usize, SweepError> {
        let mut work = UnitOfWork::begin(&self.pool).await.map_err(OutboxError::from)?;
        let swept = store::expire_due(work.conn(), now, BATCH).await?;
        for (order, reason) in &swept.quarantined {
            tracing::error!(order.id = %order, %reason, "reservation quarantined: it could not be released");
            metrics::counter!("checkout_inventory_reservations_quarantined_total").increment(1);
        }
        for reservation in &swept.expired {
            // Continue the trace of the command that reserved, so the expiry
            // shows in the checkout's trace.
            let span = tracing::info_span!("inventory.reservation_expired", order.id = %reservation.order);
            if let Some(traceparent) = &reservation.traceparent {
                let _ = span.set_parent(RecordHeaders::context_from_traceparent(traceparent));
            }
            let _entered = span.enter();
            tracing::info!("reservation expired; stock released");
            work.send(Envelope {
                id: new_message_id(),
                source: self.source.clone(),
                subject: reservation.order,
                time: now,
                correlation_id: CorrelationId::from_uuid(reservation.correlation_id),
                causation_id: MessageId::from_uuid(reservation.reserved_by),
                sequence: None,
                payload: InventoryReservationExpired {}.into(),
            });
        }
        work.commit().await?;
        Ok(swept.expired.len() + swept.quarantined.len())
    }
}
