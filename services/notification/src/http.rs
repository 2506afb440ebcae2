use axum::Router;
use axum::extract::State;
use axum::routing::get;
use checkout_platform::http::{OrderIdPath, Problem};
use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::store;

#[derive(Debug, Serialize)]
struct NotificationView {
    kind: String,
    subject: String,
    smtp_message_id: String,
    #[serde(with = "time::serde::rfc3339")]
    sent_at: OffsetDateTime,
}

impl From<store::Notification> for NotificationView {
    fn from(record: store::Notification) -> Self {
        let store::Notification { kind, subject, smtp_message_id, sent_at } = record;
        Self { kind, subject, smtp_message_id, sent_at }
    }
}

pub fn routes(pool: PgPool) -> Router {
    Router::new().route("/notifications/{order_id}", get(for_order)).with_state(pool)
}

/// `GET /notifications/{order_id}`: the emails sent about an order (addresses left out).
async fn for_order(
    State(pool): State<PgPool>,
    OrderIdPath(order): OrderIdPath,
) -> Result<axum::Json<Vec<NotificationView>>, Problem> {
    let notifications = store::for_order(&pool, order).await.map_err(Problem::storage)?;
    Ok(axum::Json(notifications.into_iter().map(NotificationView::from).collect()))
}
