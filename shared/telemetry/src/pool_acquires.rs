//! How long each database connection took to acquire, as the histogram
//! `checkout_db_pool_acquire_seconds`.
//!
//! sqlx exposes no count of pool waits; what it does give is an event per
//! acquire (target `sqlx::pool::acquire`, field `acquired_after_secs`, at
//! the level its pool options name). This layer, filtered to that target
//! alone, turns the event into the histogram: an acquire past the first
//! bucket is one that waited for a connection.

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// The target of sqlx's acquire events.
pub const TARGET: &str = "sqlx::pool::acquire";

/// Records `acquired_after_secs` of each acquire event it is given.
#[derive(Debug, Default, Clone, Copy)]
pub struct PoolAcquires;

struct AcquiredAfter(Option<f64>);

impl Visit for AcquiredAfter {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "acquired_after_secs" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: Subscriber> Layer<S> for PoolAcquires {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut acquired = AcquiredAfter(None);
        event.record(&mut acquired);
        if let Some(seconds) = acquired.0 {
            metrics::histogram!("checkout_db_pool_acquire_seconds").record(seconds);
        }
    }
}
