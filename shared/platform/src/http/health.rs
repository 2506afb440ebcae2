use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use checkout_kafka::ConsumerStatus;
use serde_json::json;
use sqlx::PgPool;

use crate::metrics::Collectors;

/// One thing a service needs before it can do its work.
#[derive(Clone, Debug)]
pub enum ReadinessCheck {
    /// The service's database answers.
    Database(PgPool),
    /// The outbox is being published: no message waits longer than the age
    /// given (messages set aside as unpublishable do not count).
    Outbox(PgPool, Duration),
    /// A consumer has joined its group, its client reaches the broker, and
    /// none of its records is waiting out a transient failure (named for the
    /// report).
    Consumer(String, ConsumerStatus),
}

impl ReadinessCheck {
    fn name(&self) -> String {
        match self {
            Self::Database(_) => "database".to_owned(),
            Self::Outbox(..) => "outbox".to_owned(),
            Self::Consumer(name, _) => format!("consumer:{name}"),
        }
    }

    async fn run(&self) -> Result<(), String> {
        match self {
            Self::Database(pool) => {
                let ping = sqlx::query("SELECT 1").execute(pool);
                match tokio::time::timeout(Duration::from_secs(2), ping).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("no answer within 2 s".to_owned()),
                }
            }
            Self::Outbox(pool, max_age) => {
                let oldest = sqlx::query_scalar::<_, Option<i64>>(
                    "SELECT (EXTRACT(EPOCH FROM now() - min(created_at)) * 1000)::BIGINT FROM outbox_messages
                     WHERE published_at IS NULL AND quarantined_at IS NULL",
                )
                .fetch_one(pool);
                match tokio::time::timeout(Duration::from_secs(2), oldest).await {
                    Ok(Ok(Some(age_ms))) if u128::try_from(age_ms).unwrap_or(0) > max_age.as_millis() => Err(format!(
                        "the oldest unpublished message is {} s old: the relay is not publishing",
                        age_ms / 1000
                    )),
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("no answer within 2 s".to_owned()),
                }
            }
            Self::Consumer(_, status) if !status.joined() => Err("not yet a member of its consumer group".to_owned()),
            Self::Consumer(_, status) => {
                broker_reachable(status)?;
                match status.waiting_out_failures() {
                    // Its records wait for a dependency (the database, the mail server).
                    Some((partitions, error)) => {
                        Err(format!("{partitions} partition(s) waiting out a transient failure: {error}"))
                    }
                    None => Ok(()),
                }
            }
        }
    }
}

/// The client reports its broker connections every second; a report older
/// than this means the client itself is stuck.
const BROKER_REPORT_MAX_AGE: Duration = Duration::from_secs(5);

/// The consumer's client talks to the broker (as of its last report).
fn broker_reachable(status: &ConsumerStatus) -> Result<(), String> {
    let Some(brokers) = status.broker_connections() else { return Ok(()) };
    let age = brokers.sampled.elapsed();
    if age > BROKER_REPORT_MAX_AGE {
        return Err(format!("no report from the Kafka client for {} s", age.as_secs()));
    }
    if brokers.up == 0 {
        return Err(format!("broker unreachable: none of {} connection(s) up", brokers.known));
    }
    Ok(())
}

/// The checks `/readyz` runs.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    checks: Vec<ReadinessCheck>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn with(mut self, check: ReadinessCheck) -> Self {
        self.checks.push(check);
        self
    }

    async fn report(&self) -> (bool, serde_json::Value) {
        let results = futures::future::join_all(self.checks.iter().map(ReadinessCheck::run)).await;
        let ready = results.iter().all(Result::is_ok);
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks
            .iter()
            .zip(results)
            .map(|(check, result)| (check.name(), result.err().unwrap_or_else(|| "ok".to_owned()).into()))
            .collect();
        (ready, json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks }))
    }
}

/// `/healthz` (the process is alive), `/readyz` (its dependencies answer and
/// its consumers have joined their groups) and `/metrics` (Prometheus, with
/// the gauges `collectors` read at scrape time).
pub fn health_routes(readiness: Readiness, collectors: Collectors) -> Router {
    // Install the recorder now, with the router, not at the first scrape:
    // what is recorded before that would otherwise be lost.
    crate::metrics::handle();
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let (ready, report) = readiness.report().await;
                    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    (status, axum::Json(report))
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let collectors = collectors.clone();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], collectors.render().await).into_response()
                }
            }),
        )
}
