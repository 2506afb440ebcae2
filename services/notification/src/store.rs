//! All of the notification service's SQL: the record of each email sent.

use checkout_domain::OrderId;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

/// Nothing stored here is decoded into the domain, so nothing is refused.
pub type StoreError = checkout_outbox::StoreError<std::convert::Infallible>;

/// An email the SMTP server accepted (or, with no response, one recorded
/// as sent before).
#[derive(Debug)]
pub struct SentEmail<'a> {
    pub order: OrderId,
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub smtp_message_id: &'a str,
    pub smtp_response: Option<&'a str>,
}

/// One recorded email, without its recipient.
#[derive(Debug)]
pub struct Notification {
    pub kind: String,
    pub subject: String,
    pub smtp_message_id: String,
    pub sent_at: OffsetDateTime,
}

/// Whether an email of `kind` is recorded for the order.
pub async fn sent_before(executor: impl PgExecutor<'_>, order: OrderId, kind: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM notifications WHERE order_id = $1 AND kind = $2) AS "sent!""#,
        order.as_uuid(),
        kind,
    )
    .fetch_one(executor)
    .await?)
}

/// Records the email; the first record of an order and kind stands.
pub async fn record(conn: &mut PgConnection, email: &SentEmail<'_>) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO notifications (order_id, kind, recipient, subject, smtp_message_id, smtp_response)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id, kind) DO NOTHING",
        email.order.as_uuid(),
        email.kind,
        email.recipient,
        email.subject,
        email.smtp_message_id,
        email.smtp_response,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The emails recorded for an order, oldest first.
pub async fn for_order(executor: impl PgExecutor<'_>, order: OrderId) -> Result<Vec<Notification>, StoreError> {
    Ok(sqlx::query_as!(
        Notification,
        "SELECT kind, subject, smtp_message_id, sent_at FROM notifications WHERE order_id = $1 ORDER BY sent_at",
        order.as_uuid(),
    )
    .fetch_all(executor)
    .await?)
}
