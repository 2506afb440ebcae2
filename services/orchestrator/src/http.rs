use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use checkout_domain::OrderId;
use checkout_kafka::RecordHeaders;
use checkout_messages::Source;
use checkout_outbox::{InboxRows, UnitOfWork};
use checkout_platform::clock;
use checkout_platform::http::{ApiJson, FieldError, Operator, OperatorTokens, OrderIdPath, Problem};
use checkout_saga::{Operation, Refusal, Saga, SagaPolicy, SagaState, SagaStatus};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::engine::{self, Cause};
use crate::handler::transition_span;
use crate::store;

/// What the routes share.
#[derive(Clone, Debug)]
pub struct Api {
    pub pool: PgPool,
    pub policy: SagaPolicy,
    pub operators: OperatorTokens,
}

impl FromRef<Api> for OperatorTokens {
    fn from_ref(api: &Api) -> Self {
        api.operators.clone()
    }
}

pub fn routes(api: Api) -> Router {
    Router::new()
        .route("/sagas", get(list))
        .route("/sagas/{order_id}", get(one))
        .route("/sagas/{order_id}/retry", post(retry))
        .route("/sagas/{order_id}/abort", post(abort))
        .route("/operator", get(whoami))
        .with_state(api)
}

/// `GET /operator` (operator): who the token is, so that a tool acting
/// outside the services' APIs (redriving dead letters) checks its token and
/// records the operator's name the way every operator action does.
async fn whoami(Operator(operator): Operator) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "operator": operator }))
}

/// A saga without the customer's email or card token.
#[derive(Debug, Serialize)]
struct SagaView {
    order_id: OrderId,
    status: &'static str,
    current_step: Option<ActiveView>,
    /// The step awaited beside `current_step`, when two run side by side.
    #[serde(skip_serializing_if = "Option::is_none")]
    alongside_step: Option<ActiveView>,
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

impl ActiveView {
    fn of(active: &checkout_saga::ActiveStep) -> Self {
        Self { step: active.step.as_str(), attempt: active.attempt, deadline: active.deadline }
    }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    operator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
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
async fn one(State(api): State<Api>, OrderIdPath(order): OrderIdPath) -> Result<axum::Json<SagaView>, Problem> {
    view(&api.pool, order).await.map(axum::Json)
}

async fn view(pool: &PgPool, order: OrderId) -> Result<SagaView, Problem> {
    let saga = store::find(pool, order)
        .await
        .map_err(Problem::storage)?
        .ok_or_else(|| Problem::not_found(format!("no saga for order {order}")))?;
    let transitions = store::history(pool, order)
        .await
        .map_err(Problem::storage)?
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
            operator: t.operator,
            reason: t.reason,
        })
        .collect();
    Ok(SagaView {
        order_id: order,
        status: saga.status().as_str(),
        current_step: saga.active().map(ActiveView::of),
        alongside_step: saga.awaiting().nth(1).map(ActiveView::of),
        inventory: snake(saga.inventory),
        payment: snake(saga.payment),
        total: saga.phase.pricing().map(checkout_domain::Pricing::total),
        outcome: outcome(&saga),
        started_at: saga.started_at,
        updated_at: saga.updated_at,
        transitions,
    })
}

/// The body of an operator's action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    /// Why; kept in the saga's history.
    reason: String,
}

/// Longest reason kept.
const MAX_REASON_CHARS: usize = 500;

/// `POST /sagas/{order_id}/retry`: sends the step the saga waits on, or gave
/// up on, again with a fresh attempt budget.
async fn retry(
    State(api): State<Api>,
    operator: Operator,
    OrderIdPath(order): OrderIdPath,
    ApiJson(request): ApiJson<ActionRequest>,
) -> Result<axum::Json<SagaView>, Problem> {
    act(&api, Operation::Retry, &operator, order, &request).await
}

/// `POST /sagas/{order_id}/abort`: before the pivot, compensates now.
async fn abort(
    State(api): State<Api>,
    operator: Operator,
    OrderIdPath(order): OrderIdPath,
    ApiJson(request): ApiJson<ActionRequest>,
) -> Result<axum::Json<SagaView>, Problem> {
    act(&api, Operation::Abort, &operator, order, &request).await
}

/// Applies an operator's action like any input: decided by the saga core,
/// made durable with its commands and its history entry in one transaction.
async fn act(
    api: &Api,
    operation: Operation,
    Operator(operator): &Operator,
    order: OrderId,
    request: &ActionRequest,
) -> Result<axum::Json<SagaView>, Problem> {
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        let message = format!("say why, in 1 to {MAX_REASON_CHARS} characters");
        return Err(Problem::validation(vec![FieldError::new("reason", message)]));
    }
    let mut work = UnitOfWork::begin(&api.pool).await.map_err(Problem::storage)?;
    let stored = store::lock(work.conn(), order)
        .await
        .map_err(Problem::storage)?
        .ok_or_else(|| Problem::not_found(format!("no saga for order {order}")))?;
    let now = clock::now();
    let transition =
        stored.saga.operate(operation, operator, reason, now, &api.policy).map_err(|refusal| refused(&refusal))?;
    let cause = Cause::operator(&stored, operator, reason);
    let span = transition_span(operation.as_str(), order, cause.correlation_id, cause.causation_id);
    if let Some(traceparent) = &stored.traceparent {
        let _ = span.set_parent(RecordHeaders::context_from_traceparent(traceparent));
    }
    let source = Source::service("orchestrator");
    let moved = async {
        tracing::info!(operator = operator.as_str(), reason, "operator action");
        let (moved, pending) =
            engine::record(&mut work, Some(&stored), transition, operation.as_str(), &cause, &source, now);
        let outbox = work.take_outbox().map_err(Problem::storage)?;
        store::add_transitions(work.conn(), &InboxRows::default(), &[pending], &outbox)
            .await
            .map_err(Problem::storage)
            .map(|()| moved)
    }
    .instrument(span)
    .await?;
    work.commit().await.map_err(Problem::storage)?;
    moved.count();
    view(&api.pool, order).await.map(axum::Json)
}

fn refused(refusal: &Refusal) -> Problem {
    let (problem_type, title) = match refusal {
        Refusal::Finished(_) => ("saga-finished", "The saga has finished"),
        Refusal::PastPivot(_) => ("saga-past-pivot", "The order is confirmed"),
        Refusal::Compensating(_) => ("saga-compensating", "The saga is already compensating"),
    };
    Problem::new(StatusCode::CONFLICT, problem_type, title, refusal.to_string())
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
    State(api): State<Api>,
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
    let cutoff = clock::now() - older_than;
    let sagas = store::list(&api.pool, status, cutoff, limit).await.map_err(Problem::storage)?;
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
