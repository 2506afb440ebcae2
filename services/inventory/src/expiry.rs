use std::time::Duration;

use checkout_kafka::RecordHeaders;
use checkout_messages::payloads::inventory::InventoryReservationExpired;
use checkout_messages::{CorrelationId, Envelope, MessageId, Source};
use checkout_outbox::{UnitOfWork, new_message_id};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::store;

/// Most reservations expired in one transaction.
const BATCH: i64 = 100;

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
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.interval) => {}
            }
            loop {
                match self.sweep_once().await {
                    Ok(count) if count == usize::try_from(BATCH).unwrap_or(usize::MAX) => {}
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, "reservation expiry sweep failed; retrying");
                        break;
                    }
                }
            }
        }
    }

    /// Expires one batch; returns how many reservations it released.
    pub async fn sweep_once(&self) -> Result<usize, checkout_outbox::OutboxError> {
        let mut work = UnitOfWork::begin(&self.pool).await?;
        let now = OffsetDateTime::now_utc();
        let expired = store::expire_due(work.conn(), now, BATCH).await.map_err(|error| match error {
            store::StoreError::Database(error) => checkout_outbox::OutboxError::Database(error),
            store::StoreError::Corrupt(detail) => checkout_outbox::OutboxError::Database(sqlx::Error::Protocol(detail)),
        })?;
        for reservation in &expired {
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
                payload: InventoryReservationExpired {}.into(),
            });
        }
        work.commit().await?;
        Ok(expired.len())
    }
}
