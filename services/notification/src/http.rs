use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use checkout_domain::OrderId;
use checkout_platform::http::Problem;
use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

#[derive(Debug, Serialize)]
struct NotificationView {
    kind: String,
    subject: String,
    smtp_message_id: String,
    #[serde(with = "time::serde::rfc3339")]
    sent_at: OffsetDateTime,
}

pub fn routes(pool: PgPool) -> Router {
    Router::new().route("/notifications/{order_id}", get(for_order)).with_state(pool)
}

/// `GET /notifications/{order_id}`: the emails sent about an order (addresses left out).
async fn for_order(
    State(pool): State<PgPool>,
    Path(order_id): Path<String>,
) -> Result<axum::Json<Vec<NotificationView>>, Problem> {
    let order: OrderId =
        order_id.parse().map_err(|_| Problem::bad_request(format!("{order_id:?} is not an order id")))?;
    sqlx::query_as!(
        NotificationView,
        "SELECT kind, subject, smtp_message_id, sent_at FROM notifications WHERE order_id = $1 ORDER BY sent_at",
        order.as_uuid(),
    )
    .fetch_all(&pool)
    .await
    .map(axum::Json)
    .map_err(|error| {
        tracing::error!(%error, "notification query failed");
        Problem::internal()
    })
}
