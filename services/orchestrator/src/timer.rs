use std::time::Duration;

use checkout_kafka::RecordHeaders;
use checkout_messages::Source;
use checkout_outbox::{OutboxError, UnitOfWork};
use checkout_platform::{clock, periodic};
use checkout_saga::{Input, SagaPolicy};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::engine::{self, Cause};
use crate::handler::transition_span;
use crate::store::{self, StoreError};

/// Most sagas woken in one transaction.
const BATCH: i64 = 50;

/// Wakes sagas whose step timed out.
#[derive(Debug, Clone)]
pub struct Timer {
    pool: PgPool,
    policy: SagaPolicy,
    interval: Duration,
    source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

impl Timer {
    pub fn new(pool: PgPool, policy: SagaPolicy, interval: Duration) -> Self {
        Self { pool, policy, interval, source: Source::service("orchestrator") }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        periodic::drain_every(self.interval, BATCH, "saga timer pass", &shutdown, || self.fire_due(clock::now())).await
    }

    /// Applies `DeadlinePassed` to every saga whose deadline passed by `now`;
    /// returns how many it woke (or set aside because they do not decode).
    pub async fn fire_due(&self, now: OffsetDateTime) -> Result<usize, TimerError> {
        let mut work = UnitOfWork::begin(&self.pool).await.map_err(OutboxError::from)?;
        let due = store::lock_due(work.conn(), now, BATCH).await?;
        for (order, reason) in &due.quarantined {
            tracing::error!(order.id = %order, %reason, "saga quarantined: its stored state does not decode");
            metrics::counter!("checkout_saga_quarantined_total").increment(1);
        }
        for stored in &due.sagas {
            // Continue the checkout's trace: a timeout belongs to the saga it ends.
            let cause = Cause::timer(stored);
            let span = transition_span(
                Input::DeadlinePassed.name(),
                stored.saga.order_id,
                cause.correlation_id,
                cause.causation_id,
            );
            if let Some(traceparent) = &stored.traceparent {
                let _ = span.set_parent(RecordHeaders::context_from_traceparent(traceparent));
            }
            let transition = stored.saga.apply(&Input::DeadlinePassed, now, &self.policy);
            let from = Some(stored.saga.status());
            engine::record(&mut work, from, transition, Input::DeadlinePassed.name(), cause, &self.source, now)
                .instrument(span)
                .await?;
        }
        work.commit().await?;
        Ok(due.sagas.len() + due.quarantined.len())
    }
}
