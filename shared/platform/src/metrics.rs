//! Prometheus metrics: one recorder per process, rendered at `/metrics`.
//!
//! Counters and histograms are recorded where things happen. Gauges that
//! describe what a database holds (the outbox backlog, sagas per state,
//! stock) are read when `/metrics` is scraped, by [`Collectors`]: an idle
//! service then runs no query of its own, and a scrape shows the database as
//! it is, not as a background loop last saw it.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Bucket bounds (seconds) of every `_seconds` histogram: from a
/// millisecond (one handler on a warm connection) to a minute (a saga that
/// waits out retries). Histograms rather than summaries, so that instances
/// can be aggregated and quantiles taken over any window.
const SECONDS_BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// The process's recorder, installed on first use. If another recorder was
/// installed first (tests running several services in one process), metrics
/// still render, just empty.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // Only fails for an empty bucket list.
        let builder = match builder.set_buckets(&SECONDS_BUCKETS) {
            Ok(with_buckets) => with_buckets,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type Collect = Arc<dyn Fn() -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// How long one collector may take before the scrape goes on without it
/// (its gauges keep their previous values).
const COLLECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Gauges set at scrape time, each by a named collector.
#[derive(Clone, Default)]
pub struct Collectors(Vec<(&'static str, Collect)>);

impl std::fmt::Debug for Collectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

impl Collectors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `collect`, run before every render; `name` labels its failures.
    #[must_use]
    pub fn with<F, Fut, E>(mut self, name: &'static str, collect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let collect: Collect = Arc::new(move || {
            let running = collect();
            Box::pin(async move { running.await.map_err(Into::into) })
        });
        metrics::counter!("checkout_metrics_collection_failures_total", "collector" => name).absolute(0);
        self.0.push((name, collect));
        self
    }

    /// The database pool's connections: in use, idle, and the most it opens.
    #[must_use]
    pub fn with_pool(self, pool: PgPool) -> Self {
        self.with("database_pool", move || {
            let size = pool.size();
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            let max = pool.options().get_max_connections();
            async move {
                metrics::gauge!("checkout_db_pool_connections", "state" => "in_use")
                    .set(f64::from(size.saturating_sub(idle)));
                metrics::gauge!("checkout_db_pool_connections", "state" => "idle").set(f64::from(idle));
                metrics::gauge!("checkout_db_pool_max_connections").set(f64::from(max));
                Ok::<(), BoxError>(())
            }
        })
    }

    /// Runs every collector (at once, each within [`COLLECT_TIMEOUT`]).
    /// A failure is counted and logged; the scrape still answers.
    pub async fn collect(&self) {
        let runs = self.0.iter().map(|(name, collect)| async move {
            let failure = match tokio::time::timeout(COLLECT_TIMEOUT, collect()).await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no answer within {} s", COLLECT_TIMEOUT.as_secs()),
            };
            metrics::counter!("checkout_metrics_collection_failures_total", "collector" => *name).increment(1);
            tracing::warn!(collector = name, error = %failure, "metrics collector failed; its gauges keep their last values");
        });
        futures::future::join_all(runs).await;
    }

    /// Collects, then renders the Prometheus text.
    pub async fn render(&self) -> String {
        self.collect().await;
        handle().render()
    }
}
