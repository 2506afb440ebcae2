use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use checkout_domain::OrderId;
use checkout_platform::http::Problem;
use checkout_saga::{Saga, SagaState, SagaStatus};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::store;

pub fn routes(pool: PgPool) -> Router {
    Router::new().route("/sagas", get(list)).route("/sagas/{order_id}", get(one)).with_state(pool)
}

/// A saga without the customer's email or card token.
#[derive(Debug, Serialize)]
struct SagaView {
    order_id: OrderId,
    status: &'static str,
    current_step: Option<ActiveView>,
    inventory: String,
    payment: String,
    total: Option<checkout_domain::Money>,
    outcome: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    transitions: Vec<TransitionView>,
}

#[derive(Debug, Serialize)]
struct ActiveView {
    step: &'static str,
    attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    deadline: OffsetDateTime,
}

#[derive(Debug, Serialize)]
struct TransitionView {
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    input: String,
    message_id: Option<uuid::Uuid>,
    from: Option<String>,
    to: String,
    step: Option<String>,
    commands: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored: Option<String>,
}

fn snake(value: impl Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn outcome(saga: &Saga) -> Option<serde_json::Value> {
    match &saga.state {
        SagaState::Cancelled { reason, .. } | SagaState::Compensating { reason, .. } => {
            serde_json::to_value(reason).ok()
        }
        SagaState::NeedsAttention { step, detail, .. } => Some(serde_json::json!({ "step": step, "detail": detail })),
        _ => None,
    }
}

/// `GET /sagas/{order_id}`: the saga's state and every transition it made.
async fn one(State(pool): State<PgPool>, Path(order_id): Path<String>) -> Result<axum::Json<SagaView>, Problem> {
    let order: OrderId =
        order_id.parse().map_err(|_| Problem::bad_request(format!("{order_id:?} is not an order id")))?;
    let saga = store::find(&pool, order)
        .await
        .map_err(internal)?
        .ok_or_else(|| Problem::not_found(format!("no saga for order {order}")))?;
    let transitions = store::history(&pool, order)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|t| TransitionView {
            at: t.at,
            input: t.input,
            message_id: t.message_id,
            from: t.from_status,
            to: t.to_status,
            step: t.step,
            commands: t.commands,
            ignored: t.ignored,
        })
        .collect();
    Ok(axum::Json(SagaView {
        order_id: order,
        status: saga.status().as_str(),
        current_step: saga.active().map(|a| ActiveView {
            step: a.step.as_str(),
            attempt: a.attempt,
            deadline: a.deadline,
        }),
        inventory: snake(saga.inventory),
        payment: snake(saga.payment),
        total: saga.pricing.as_ref().map(checkout_domain::Pricing::total),
        outcome: outcome(&saga),
        started_at: saga.started_at,
        updated_at: saga.updated_at,
        transitions,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    /// `90`, `90s`, `15m`, `2h`: only sagas not updated for at least this long.
    older_than: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
struct ListView {
    sagas: Vec<SummaryView>,
}

#[derive(Debug, Serialize)]
struct SummaryView {
    order_id: uuid::Uuid,
    status: String,
    current_step: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    deadline: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// `GET /sagas?state=running&older_than=5m`: finds stuck sagas, oldest first.
async fn list(
    State(pool): State<PgPool>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<ListView>, Problem> {
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let status = query
        .state
        .as_deref()
        .map(|state| {
            SagaStatus::parse(state).ok_or_else(|| {
                let known: Vec<&str> = SagaStatus::ALL.iter().map(|s| s.as_str()).collect();
                Problem::bad_request(format!("state must be one of {}, got {state:?}", known.join(", ")))
            })
        })
        .transpose()?;
    let older_than = query.older_than.as_deref().map(parse_age).transpose()?.unwrap_or(Duration::ZERO);
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 1000"));
    }
    let cutoff = OffsetDateTime::now_utc() - older_than;
    let sagas = store::list(&pool, status, cutoff, limit).await.map_err(internal)?;
    Ok(axum::Json(ListView {
        sagas: sagas
            .into_iter()
            .map(|s| SummaryView {
                order_id: s.order_id,
                status: s.status,
                current_step: s.current_step,
                deadline: s.deadline,
                started_at: s.started_at,
                updated_at: s.updated_at,
            })
            .collect(),
    }))
}

fn parse_age(text: &str) -> Result<Duration, Problem> {
    let invalid = || Problem::bad_request(format!("older_than must look like 90, 90s, 15m or 2h, got {text:?}"));
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let value: u64 = digits.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "" | "s" => value,
        "m" => value.checked_mul(60).ok_or_else(invalid)?,
        "h" => value.checked_mul(3600).ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    Ok(Duration::from_secs(seconds))
}

/// 503 with `Retry-After` while the database is away, 500 otherwise.
fn internal(error: impl std::error::Error + 'static) -> Problem {
    Problem::storage_failure(&error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_with_or_without_a_unit() {
        assert_eq!(parse_age("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_age("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_age("2h").unwrap(), Duration::from_secs(7200));
        for bad in ["", "m", "5d", "-5", "1.5h", "99999999999999999999h"] {
            assert!(parse_age(bad).is_err(), "{bad:?} accepted");
        }
    }
}
