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

impl From<store::OperationRecord> for OperationView {
    fn from(record: store::OperationRecord) -> Self {
        let store::OperationRecord { operation, outcome, amount_minor, currency, detail, at } = record;
        Self { operation, outcome, amount_minor, currency, detail, at }
    }
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
        .map_err(Problem::storage)?
        .ok_or_else(|| Problem::not_found(format!("no payment for order {order}")))?;
    let operations = store::operations(&pool, order).await.map_err(Problem::storage)?;
    let operations = operations.into_iter().map(OperationView::from).collect();
    Ok(axum::Json(PaymentView {
        order_id: order,
        status: payment.status.as_str(),
        amount: payment.amount,
        authorization_id: payment.authorization_id,
        decline_detail: payment.decline.map(|(_, detail)| detail),
        operations,
    }))
}
