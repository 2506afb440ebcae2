use axum::Router;
use axum::extract::State;
use axum::routing::get;
use checkout_domain::OrderId;
use checkout_platform::http::{OrderIdPath, Problem};
use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::store;

#[derive(Debug, Serialize)]
struct PaymentView {
    order_id: OrderId,
    status: &'static str,
    amount: Option<checkout_domain::Money>,
    authorization_id: Option<String>,
    decline_detail: Option<String>,
    operations: Vec<OperationView>,
}

#[derive(Debug, Serialize)]
struct OperationView {
    operation: String,
    outcome: String,
    amount_minor: Option<i64>,
    currency: Option<String>,
    detail: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
}

pub fn routes(pool: PgPool) -> Router {
    Router::new().route("/payments/{order_id}", get(payment)).with_state(pool)
}

/// `GET /payments/{order_id}`: the payment and every gateway call made for it.
async fn payment(
    State(pool): State<PgPool>,
    OrderIdPath(order): OrderIdPath,
) -> Result<axum::Json<PaymentView>, Problem> {
    let payment = store::load(&pool, order)
        .await
        .map_err(internal)?
        .ok_or_else(|| Problem::not_found(format!("no payment for order {order}")))?;
    let operations = sqlx::query_as!(
        OperationView,
        "SELECT operation, outcome, amount_minor, currency, detail, at FROM payment_operations WHERE order_id = $1 ORDER BY id",
        order.as_uuid(),
    )
    .fetch_all(&pool)
    .await
    .map_err(internal)?;
    Ok(axum::Json(PaymentView {
        order_id: order,
        status: payment.status.as_str(),
        amount: payment.amount,
        authorization_id: payment.authorization_id,
        decline_detail: payment.decline.map(|(_, detail)| detail),
        operations,
    }))
}

/// 503 with `Retry-After` while the database is away, 500 otherwise.
fn internal(error: impl std::error::Error + 'static) -> Problem {
    Problem::storage_failure(&error)
}
