//! The REST API: checkout, the order (now or as it was), its events, cancel,
//! and queries across orders from the read model. `GET /openapi.json`
//! describes it.

mod request;
mod view;
pub mod wait;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use checkout_domain::OrderId;
use checkout_messages::payloads::order::OrderPlaced;
use checkout_messages::{Envelope, Source};
use checkout_outbox::{UnitOfWork, first_message, new_message_id};
use checkout_platform::http::{ApiJson, OrderIdPath, Problem};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

pub use request::{ItemRequest, PaymentRequest, PlaceOrderRequest};
pub use view::{EventsView, OrderListView, OrderView, SummaryView};
pub use wait::Outcomes;

use crate::domain::{CancelDecision, Order, Status};
use crate::handler::{announcement, load_locked};
use crate::read_model::Staleness;
use crate::store::{self, Lineage, NewStream, read_model};

/// The OpenAPI document for this API, as committed in the repository.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Longest cancellation reason accepted, in characters.
const MAX_REASON: usize = 500;
/// Page size of `GET /orders`: default and largest.
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

#[derive(Clone, Debug)]
pub struct ApiState {
    pub pool: PgPool,
    pub source: Source,
    pub staleness: Staleness,
    pub outcomes: Outcomes,
}

pub fn routes(pool: PgPool, staleness: Staleness, outcomes: Outcomes) -> Router {
    let state = ApiState { pool, source: Source::service("order"), staleness, outcomes };
    Router::new()
        .route("/orders", post(place_order).get(list_orders))
        .route("/orders/{order_id}", get(get_order))
        .route("/orders/{order_id}/events", get(get_events))
        .route("/orders/{order_id}/cancel", post(cancel_order))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .with_state(state)
}

/// The answer to an accepted checkout.
#[derive(Debug, Serialize)]
pub struct OrderAccepted {
    pub order_id: OrderId,
    pub status: Status,
    /// The trace of this checkout, to open in Jaeger.
    pub trace_id: Option<String>,
}

/// `POST /orders`: validates the checkout, starts the order's stream with
/// `OrderPlaced` and publishes it, in one transaction; answers `202 Accepted`.
async fn place_order(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PlaceOrderRequest>,
) -> Result<Response, Problem> {
    let idempotency_key = idempotency_key(&headers)?;
    let order = request.validate().map_err(Problem::validation)?;
    let order_id = OrderId::from_uuid(Uuid::now_v7());
    let trace_id = checkout_telemetry::current_trace_id();

    let placed = OrderPlaced {
        customer_id: order.customer_id.clone(),
        email: order.email.clone(),
        lines: order.lines.clone(),
        card_token: order.card_token.clone(),
    };
    let message = first_message(&state.source, order_id, checkout_platform::clock::now(), placed).at_sequence(1);
    let correlation_id = message.correlation_id;
    let fingerprint = order.fingerprint();
    let first = Order::place(&order, trace_id.clone());
    let new = NewStream {
        order_id,
        fingerprint: &fingerprint,
        idempotency_key: idempotency_key.as_deref(),
        trace_id: trace_id.as_deref(),
        lineage: Lineage { causation_id: None, correlation_id: *correlation_id.as_uuid() },
        first: &first,
    };
    // The head, the first event and its announcement in one statement.
    let mut work = UnitOfWork::begin(&state.pool).await.map_err(Problem::storage)?;
    work.send(message);
    let outbox = work.take_outbox().map_err(Problem::storage)?;
    let existing = store::create(work.conn(), &new, &outbox).await.map_err(Problem::storage)?;
    if let Some(existing) = existing {
        drop(work);
        if existing.fingerprint != fingerprint {
            return Err(Problem::unprocessable(
                "idempotency-key-reused",
                "Idempotency key reused with a different request",
                "this Idempotency-Key was first used with a different body; use a new key for a new order",
            ));
        }
        let events = store::events(&state.pool, existing.order_id, None).await.map_err(Problem::storage)?;
        let status = Order::fold(existing.order_id, &events).ok().flatten().map_or(Status::Pending, |o| o.status);
        tracing::info!(order.id = %existing.order_id, "idempotent retry: returning the existing order");
        let body = OrderAccepted { order_id: existing.order_id, status, trace_id: existing.trace_id };
        return Ok(accepted(body, true));
    }
    tracing::info!(order.id = %order_id, correlation.id = %correlation_id, lines = order.lines.len(), "order placed");
    work.commit().await.map_err(Problem::storage)?;
    Ok(accepted(OrderAccepted { order_id, status: Status::Pending, trace_id }, false))
}

fn accepted(body: OrderAccepted, replayed: bool) -> Response {
    let location = format!("/orders/{}", body.order_id);
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().map_err(|_| Problem::bad_request("Idempotency-Key must be printable ASCII"))?.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(Problem::bad_request(format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")));
    }
    Ok(Some(key.to_owned()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AsOf {
    as_of: Option<String>,
}

fn parse_time(name: &str, text: &str) -> Result<OffsetDateTime, Problem> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| Problem::bad_request(format!("{name} must be an RFC 3339 time such as 2026-12-02T10:00:00Z: {e}")))
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    query.map(|Query(q)| q).map_err(|rejection| Problem::bad_request(rejection.body_text()))
}

/// `GET /orders/{order_id}[?as_of=<RFC 3339>]`: the order folded from its
/// events — all of them, or those appended at or before `as_of`. With
/// `Prefer: wait=N` (and no `as_of`) a pending order is answered as soon as
/// its status changes, or after N seconds (at most [`wait::MAX_WAIT`]) as it
/// is then.
async fn get_order(
    State(state): State<ApiState>,
    OrderIdPath(order_id): OrderIdPath,
    headers: HeaderMap,
    params: Result<Query<AsOf>, QueryRejection>,
) -> Result<Response, Problem> {
    let as_of = query(params)?.as_of.map(|text| parse_time("as_of", &text)).transpose()?;
    let wait = wait::requested(&headers).filter(|_| as_of.is_none());
    // Watching before the first read, so a change committed right after it still wakes this request.
    let mut watch = wait.map(|_| state.outcomes.watch(order_id));
    let mut order = read_order(&state.pool, order_id, as_of).await?;
    if let (Some(watch), Some(wait)) = (watch.as_mut(), wait) {
        let deadline = tokio::time::Instant::now() + wait;
        while order.status == Status::Pending {
            match tokio::time::timeout_at(deadline, watch.changed()).await {
                Ok(true) => order = read_order(&state.pool, order_id, None).await?,
                Ok(false) | Err(_) => break,
            }
        }
    }
    let mut response = axum::Json(OrderView::from(order)).into_response();
    if let Some(wait) = wait {
        let headers = response.headers_mut();
        headers.insert("preference-applied", wait::applied(wait));
        headers.insert(header::VARY, HeaderValue::from_static("prefer"));
    }
    Ok(response)
}

async fn read_order(pool: &PgPool, order_id: OrderId, as_of: Option<OffsetDateTime>) -> Result<Order, Problem> {
    let events = store::events(pool, order_id, as_of).await.map_err(Problem::storage)?;
    let order = Order::fold(order_id, &events)
        .map_err(|e| Problem::storage(store::Refusal::Fold { order: order_id, source: e }))?;
    match (order, as_of) {
        (Some(order), _) => Ok(order),
        (None, Some(as_of)) => Err(Problem::not_found(format!("order {order_id} did not exist at {as_of}"))),
        (None, None) => Err(Problem::not_found(format!("no order {order_id}"))),
    }
}

/// `GET /orders/{order_id}/events`: the order's stream, oldest first.
async fn get_events(
    State(state): State<ApiState>,
    OrderIdPath(order_id): OrderIdPath,
) -> Result<axum::Json<EventsView>, Problem> {
    let events = store::events(&state.pool, order_id, None).await.map_err(Problem::storage)?;
    if events.is_empty() {
        return Err(Problem::not_found(format!("no order {order_id}")));
    }
    let events = events.iter().map(view::EventView::of).collect::<Result<_, _>>().map_err(Problem::storage)?;
    Ok(axum::Json(EventsView { order_id, events }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: Option<String>,
}

/// `POST /orders/{order_id}/cancel` with an optional `{"reason": …}`:
/// `202` while the saga decides (also when asked again), `200` with the
/// order once cancelled, `409` once confirmed.
async fn cancel_order(
    State(state): State<ApiState>,
    OrderIdPath(order_id): OrderIdPath,
    body: Bytes,
) -> Result<Response, Problem> {
    let body: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("the body must be {{\"reason\": \"…\"}}: {e}")))?
    };
    let reason = body.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON) {
        return Err(Problem::bad_request(format!("reason must be at most {MAX_REASON} characters")));
    }
    let mut work = UnitOfWork::begin(&state.pool).await.map_err(Problem::storage)?;
    let mut order = load_locked(&mut work, order_id)
        .await
        .map_err(Problem::storage)?
        .ok_or_else(|| Problem::not_found(format!("no order {order_id}")))?;
    match order.request_cancellation(reason) {
        CancelDecision::Request(event) => {
            let lineage = Lineage { causation_id: None, correlation_id: order.correlation_id };
            let sequences = store::append(work.conn(), order_id, lineage, std::slice::from_ref(&event))
                .await
                .map_err(Problem::storage)?;
            if let (Some(payload), Some(&sequence)) = (announcement(&event), sequences.first()) {
                let id = new_message_id();
                let now = checkout_platform::clock::now();
                let mut message =
                    Envelope::first(id, state.source.clone(), order_id, now, payload).at_sequence(sequence);
                message.correlation_id = order.correlation_id.into();
                work.send(message);
            }
            work.commit().await.map_err(Problem::storage)?;
            tracing::info!(order.id = %order_id, "cancellation requested");
            let events = store::events(&state.pool, order_id, None).await.map_err(Problem::storage)?;
            if let Ok(Some(now)) = Order::fold(order_id, &events) {
                order = now;
            }
            Ok((StatusCode::ACCEPTED, axum::Json(OrderView::from(order))).into_response())
        }
        CancelDecision::AlreadyRequested => {
            Ok((StatusCode::ACCEPTED, axum::Json(OrderView::from(order))).into_response())
        }
        CancelDecision::AlreadyCancelled => Ok((StatusCode::OK, axum::Json(OrderView::from(order))).into_response()),
        CancelDecision::Refused => Err(Problem::conflict(
            "order-confirmed",
            "The order is confirmed",
            format!("order {order_id} is confirmed: the saga passed its pivot, so it can no longer be cancelled"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    customer_id: Option<String>,
    status: Option<String>,
    placed_after: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /orders?customer_id=&status=&placed_after=&limit=&cursor=`: newest
/// first, from the read model only, saying how stale it may be.
async fn list_orders(
    State(state): State<ApiState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let params = query(params)?;
    let status = params
        .status
        .map(|s| {
            Status::parse(&s.to_uppercase())
                .ok_or_else(|| Problem::bad_request("status must be PENDING, CONFIRMED or CANCELLED"))
        })
        .transpose()?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let filter = read_model::Query {
        customer_id: params.customer_id,
        status,
        placed_after: params.placed_after.map(|t| parse_time("placed_after", &t)).transpose()?,
        after: params.cursor.map(|c| decode_cursor(&c)).transpose()?,
        limit,
    };
    let rows = read_model::query(&state.pool, &filter).await.map_err(Problem::storage)?;
    let next_cursor = if i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit {
        rows.last().and_then(|last| last.placed_at.map(|at| encode_cursor(at, *last.order_id.as_uuid())))
    } else {
        None
    };
    let staleness = state.staleness.view(checkout_platform::clock::now());
    let mut response = axum::Json(OrderListView {
        orders: rows.into_iter().map(SummaryView::from).collect(),
        next_cursor,
        staleness: staleness.clone(),
    })
    .into_response();
    let headers = response.headers_mut();
    if let Some(lag) = staleness.lag_records.and_then(|lag| HeaderValue::from_str(&lag.to_string()).ok()) {
        headers.insert("read-model-lag-records", lag);
    }
    if let Some(at) = staleness
        .consistent_as_of
        .and_then(|at| at.format(&Rfc3339).ok())
        .and_then(|at| HeaderValue::from_str(&at).ok())
    {
        headers.insert("read-model-consistent-as-of", at);
    }
    Ok(response)
}

/// A cursor is the last row's key, `<placed_at in µs since the epoch>.<order id>`.
fn encode_cursor(placed_at: OffsetDateTime, order_id: Uuid) -> String {
    format!("{}.{order_id}", placed_at.unix_timestamp_nanos() / 1000)
}

fn decode_cursor(cursor: &str) -> Result<(OffsetDateTime, Uuid), Problem> {
    let bad = || Problem::bad_request("cursor is not one this API returned");
    let (micros, id) = cursor.split_once('.').ok_or_else(bad)?;
    let micros: i128 = micros.parse().map_err(|_| bad())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| bad())?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_the_key_it_was_made_from() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_000).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)).unwrap(), (at, id));
        assert!(decode_cursor("nonsense").is_err());
    }
}
