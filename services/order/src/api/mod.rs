//! The REST API: `POST /orders`, `GET /orders/{order_id}`, `GET /openapi.json`.

mod request;
mod view;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use checkout_domain::OrderId;
use checkout_messages::Source;
use checkout_messages::payloads::order::OrderPlaced;
use checkout_outbox::{UnitOfWork, first_message};
use checkout_platform::http::{ApiJson, OrderIdPath, Problem};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub use request::{ItemRequest, NewOrder, PaymentRequest, PlaceOrderRequest};
pub use view::OrderView;

use crate::store;

/// The OpenAPI document for this API, as committed in the repository.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Clone, Debug)]
pub struct ApiState {
    pub pool: PgPool,
    pub source: Source,
}

pub fn routes(pool: PgPool) -> Router {
    let state = ApiState { pool, source: Source::service("order") };
    Router::new()
        .route("/orders", post(place_order))
        .route("/orders/{order_id}", get(get_order))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .with_state(state)
}

/// The answer to an accepted checkout.
#[derive(Debug, Serialize)]
pub struct OrderAccepted {
    pub order_id: OrderId,
    pub status: &'static str,
    /// The trace of this checkout, to open in Jaeger.
    pub trace_id: Option<String>,
}

/// `POST /orders`: validates the checkout, stores the order and its
/// `OrderPlaced` event in one transaction, and answers `202 Accepted`.
async fn place_order(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PlaceOrderRequest>,
) -> Result<Response, Problem> {
    let idempotency_key = idempotency_key(&headers)?;
    let order = request.validate().map_err(Problem::validation)?;
    let order_id = OrderId::from_uuid(Uuid::now_v7());
    let trace_id = checkout_telemetry::current_trace_id();

    let mut work = UnitOfWork::begin(&state.pool).await.map_err(internal)?;
    let existing = store::insert(work.conn(), order_id, &order, idempotency_key.as_deref(), trace_id.as_deref())
        .await
        .map_err(internal)?;
    if let Some(existing) = existing {
        drop(work);
        if existing.fingerprint != order.fingerprint() {
            return Err(Problem::unprocessable(
                "idempotency-key-reused",
                "Idempotency key reused with a different request",
                "this Idempotency-Key was first used with a different body; use a new key for a new order",
            ));
        }
        let status = store::load(&state.pool, existing.order_id).await.map_err(internal)?.map(|o| o.status);
        tracing::info!(order.id = %existing.order_id, "idempotent retry: returning the existing order");
        let body = OrderAccepted {
            order_id: existing.order_id,
            status: status_text(status.as_deref()),
            trace_id: existing.trace_id,
        };
        return Ok(accepted(body, true));
    }
    let placed = OrderPlaced {
        customer_id: order.customer_id.clone(),
        email: order.email.clone(),
        lines: order.lines.clone(),
        card_token: order.card_token.clone(),
    };
    let event = first_message(&state.source, order_id, placed);
    tracing::info!(order.id = %order_id, correlation.id = %event.correlation_id, lines = order.lines.len(), "order placed");
    work.send(event);
    work.commit().await.map_err(internal)?;
    Ok(accepted(OrderAccepted { order_id, status: "PENDING", trace_id }, false))
}

fn status_text(status: Option<&str>) -> &'static str {
    match status.and_then(store::Status::parse) {
        Some(status) => status.as_str(),
        None => "PENDING",
    }
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

/// `GET /orders/{order_id}`: status, lines, total, the saga's timeline, the trace id.
async fn get_order(
    State(state): State<ApiState>,
    OrderIdPath(order): OrderIdPath,
) -> Result<axum::Json<OrderView>, Problem> {
    let record = store::load(&state.pool, order)
        .await
        .map_err(internal)?
        .ok_or_else(|| Problem::not_found(format!("no order {order}")))?;
    Ok(axum::Json(OrderView::from(record)))
}

/// 503 with `Retry-After` while the database is away, 500 otherwise.
fn internal(error: impl std::error::Error + 'static) -> Problem {
    Problem::storage_failure(&error)
}
