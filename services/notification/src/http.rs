use axum::Router;
use axum::extract::State;
use axum::routing::get;
use checkout_platform::http::{OrderIdPath, Problem};
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
    OrderIdPath(order): OrderIdPath,
) -> Result<axum::Json<Vec<NotificationView>>, Problem> {
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
