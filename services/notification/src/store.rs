//! All of the notification service's SQL: the record of each email sent.

use checkout_domain::OrderId;
use checkout_outbox::OutboxRows;
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

/// What is known before an email is sent: whether `consumer` processed the
/// command already, and whether an email of `kind` is recorded for the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before {
    pub processed: bool,
    pub sent: bool,
}

/// Reads [`Before`] in one statement.
pub async fn before(
    executor: impl PgExecutor<'_>,
    consumer: &str,
    message_id: uuid::Uuid,
    order: OrderId,
    kind: &str,
) -> Result<Before, StoreError> {
    let row = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM inbox_messages WHERE consumer = $1 AND message_id = $2) AS "processed!",
                  EXISTS (SELECT 1 FROM notifications WHERE order_id = $3 AND kind = $4) AS "sent!""#,
        consumer,
        message_id,
        order.as_uuid(),
        kind,
    )
    .fetch_one(executor)
    .await?;
    Ok(Before { processed: row.processed, sent: row.sent })
}

/// Claims the command in `consumer`'s inbox, records the email (the first
/// record of an order and kind stands) and writes `outbox`, in one
/// statement that needs no transaction around it: whether the claim was
/// new. When it was not (a delivery of the same command claimed it
/// meanwhile), the record and the outbox rows are not written either.
pub async fn claim_and_record(
    conn: &mut PgConnection,
    consumer: &str,
    command: (uuid::Uuid, &str),
    email: &SentEmail<'_>,
    outbox: &OutboxRows,
) -> Result<bool, StoreError> {
    let (message_id, message_type) = command;
    let claimed = sqlx::query_scalar!(
        r#"WITH claimed AS (
               INSERT INTO inbox_messages (consumer, message_id, message_type) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING
               RETURNING message_id
           ), recorded AS (
               INSERT INTO notifications (order_id, kind, recipient, subject, smtp_message_id, smtp_response)
               SELECT $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM claimed)
               ON CONFLICT (order_id, kind) DO NOTHING
           ), sent AS (
               INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers)
               SELECT id, topic, key, payload, headers
                 FROM UNNEST($10::UUID[], $11::TEXT[], $12::TEXT[], $13::BYTEA[], $14::JSONB[])
                      WITH ORDINALITY AS m(id, topic, key, payload, headers, n)
                WHERE EXISTS (SELECT 1 FROM claimed)
                ORDER BY n
           )
           SELECT EXISTS (SELECT 1 FROM claimed) AS "claimed!""#,
        consumer,
        message_id,
        message_type,
        email.order.as_uuid(),
        email.kind,
        email.recipient,
        email.subject,
        email.smtp_message_id,
        email.smtp_response,
        &outbox.ids,
        &outbox.topics as &[&str],
        &outbox.keys,
        &outbox.payloads,
        &outbox.headers,
    )
    .fetch_one(conn)
    .await?;
    Ok(claimed)
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
