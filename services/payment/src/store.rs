//! The payment tables.

use checkout_domain::{Currency, Money, OrderId};
use checkout_messages::payloads::payment::DeclineCode;
use sqlx::{PgConnection, PgExecutor};

use crate::gateway::{IdempotencyKey, Operation};
use crate::ledger::{Payment, Status};

use checkout_outbox::OutboxRows;
pub use checkout_outbox::StoreError;

fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(error)
}

pub async fn load(executor: impl PgExecutor<'_>, order: OrderId) -> Result<Option<Payment>, StoreError> {
    let Some(row) = sqlx::query!(
        r#"SELECT status AS "status: Status", amount_minor, currency, authorization_id, decline_code, decline_detail
         FROM payments WHERE order_id = $1"#,
        order.as_uuid(),
    )
    .fetch_optional(executor)
    .await?
    else {
        return Ok(None);
    };
    let columns = (row.amount_minor, row.currency, row.authorization_id, row.decline_code, row.decline_detail);
    payment(row.status, columns).map(Some)
}

/// Whether `consumer` processed the command `message_id` already, and the
/// order's payment, in one statement: what a command is planned from.
pub async fn load_unless_processed(
    executor: impl PgExecutor<'_>,
    consumer: &str,
    message_id: uuid::Uuid,
    order: OrderId,
) -> Result<(bool, Option<Payment>), StoreError> {
    let row = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM inbox_messages WHERE consumer = $1 AND message_id = $2) AS "processed!",
                  p.status AS "status?: Status", p.amount_minor, p.currency, p.authorization_id,
                  p.decline_code, p.decline_detail
             FROM (SELECT 1) AS one LEFT JOIN payments p ON p.order_id = $3"#,
        consumer,
        message_id,
        order.as_uuid(),
    )
    .fetch_one(executor)
    .await?;
    let Some(status) = row.status else { return Ok((row.processed, None)) };
    let columns = (row.amount_minor, row.currency, row.authorization_id, row.decline_code, row.decline_detail);
    Ok((row.processed, Some(payment(status, columns)?)))
}

/// The columns of a payment row after its status.
type Columns = (Option<i64>, Option<String>, Option<String>, Option<String>, Option<String>);

fn payment(status: Status, (minor, currency, authorization_id, code, detail): Columns) -> Result<Payment, StoreError> {
    let amount = match (minor, currency) {
        (Some(minor), Some(currency)) => {
            Some(Money::new(minor, Currency::parse(&currency).map_err(corrupt)?).map_err(corrupt)?)
        }
        _ => None,
    };
    let decline = match (code, detail) {
        (Some(code), Some(detail)) => Some((decline_code(&code), detail)),
        _ => None,
    };
    Ok(Payment { status, amount, authorization_id, decline })
}

fn decline_code(text: &str) -> DeclineCode {
    match text {
        "card_declined" => DeclineCode::CardDeclined,
        "insufficient_funds" => DeclineCode::InsufficientFunds,
        "already_voided" => DeclineCode::AlreadyVoided,
        _ => DeclineCode::Other,
    }
}

fn decline_text(code: DeclineCode) -> &'static str {
    match code {
        DeclineCode::CardDeclined => "card_declined",
        DeclineCode::InsufficientFunds => "insufficient_funds",
        DeclineCode::AlreadyVoided => "already_voided",
        DeclineCode::Other => "other",
    }
}

/// Records, before asking the gateway, that an authorization is under way
/// (a payment `authorizing`, unless the order has one) and claims the call
/// in the audit trail (`started`, see [`record_operation`]), in one
/// statement, so a crash during the call leaves a trace a void can act on.
/// Returns the payment's status after it.
pub async fn begin_authorization(
    executor: impl PgExecutor<'_>,
    order: OrderId,
    amount: Money,
) -> Result<Status, StoreError> {
    let currency = amount.currency();
    let key = IdempotencyKey::new(order, Operation::Authorize);
    let status = sqlx::query_scalar!(
        r#"WITH begun AS (
               INSERT INTO payments (order_id, status, amount_minor, currency) VALUES ($1, 'authorizing', $2, $3)
               ON CONFLICT (order_id) DO NOTHING
               RETURNING status
           ), started AS (
               INSERT INTO payment_operations (order_id, operation, outcome, amount_minor, currency, idempotency_key)
               VALUES ($1, 'authorize', 'started', $2, $3, $4)
           )
           SELECT COALESCE((SELECT status FROM begun), (SELECT status FROM payments WHERE order_id = $1))
               AS "status!: Status""#,
        order.as_uuid(),
        amount.amount_minor(),
        currency.code(),
        key.as_str(),
    )
    .fetch_one(executor)
    .await?;
    Ok(status)
}

/// Claims the command `message_id` in `consumer`'s inbox and, when it is
/// new, reads the payment's status, locked until the caller's transaction
/// ends, in one statement: whether the claim was new, and the status. (The
/// lock is taken after the inbox row, as claiming and then locking in two
/// statements would.)
pub async fn claim_and_lock_status(
    conn: &mut PgConnection,
    consumer: &str,
    (message_id, message_type): (uuid::Uuid, &str),
    order: OrderId,
) -> Result<(bool, Option<Status>), StoreError> {
    let row = sqlx::query!(
        r#"WITH claimed AS (
               INSERT INTO inbox_messages (consumer, message_id, message_type) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING
               RETURNING message_id
           )
           SELECT EXISTS (SELECT 1 FROM claimed) AS "claimed!", p.status AS "status?: Status"
             FROM (SELECT 1) AS one
             LEFT JOIN LATERAL (
                 SELECT status FROM payments
                  WHERE order_id = $4 AND EXISTS (SELECT 1 FROM claimed)
                    FOR UPDATE
             ) p ON true"#,
        consumer,
        message_id,
        message_type,
        order.as_uuid(),
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.claimed, row.status))
}

/// A payment's new status, and what it learned with it.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub status: Status,
    pub authorization_id: Option<&'a str>,
    pub decline: Option<(DeclineCode, &'a str)>,
}

/// An entry of the audit trail.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub operation: Operation,
    pub outcome: &'a str,
    pub amount: Option<Money>,
    pub detail: Option<&'a str>,
}

/// Sets the payment's status (creating its row when there is none),
/// appends `entry` to its audit trail and writes `outbox` (from
/// `UnitOfWork::take_outbox`: the reply), in one statement.
pub async fn update_recording(
    conn: &mut PgConnection,
    order: OrderId,
    change: Change<'_>,
    entry: Entry<'_>,
    outbox: &OutboxRows,
) -> Result<(), StoreError> {
    let currency = entry.amount.map(|a| a.currency());
    let key = IdempotencyKey::new(order, entry.operation);
    sqlx::query!(
        "WITH updated AS (
             INSERT INTO payments (order_id, status, authorization_id, decline_code, decline_detail)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,
                 authorization_id = COALESCE(EXCLUDED.authorization_id, payments.authorization_id),
                 decline_code = COALESCE(EXCLUDED.decline_code, payments.decline_code),
                 decline_detail = COALESCE(EXCLUDED.decline_detail, payments.decline_detail),
                 updated_at = now()
         ), sent AS (
             INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers)
             SELECT id, topic, key, payload, headers
               FROM UNNEST($12::UUID[], $13::TEXT[], $14::TEXT[], $15::BYTEA[], $16::JSONB[])
                    WITH ORDINALITY AS m(id, topic, key, payload, headers, n)
              ORDER BY n
         )
         INSERT INTO payment_operations (order_id, operation, outcome, amount_minor, currency, detail, idempotency_key)
         VALUES ($1, $6, $7, $8, $9, $10, $11)",
        order.as_uuid(),
        change.status as Status,
        change.authorization_id,
        change.decline.map(|(code, _)| decline_text(code)),
        change.decline.map(|(_, detail)| detail),
        entry.operation.as_str(),
        entry.outcome,
        entry.amount.map(|a| a.amount_minor()),
        currency.as_ref().map(Currency::code),
        entry.detail,
        key.as_str(),
        &outbox.ids,
        &outbox.topics as &[&str],
        &outbox.keys,
        &outbox.payloads,
        &outbox.headers,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// [`update_recording`] without a transaction around it: claims the command
/// in `consumer`'s inbox and, with the claim, sets the status, appends
/// `entry` and writes `outbox`, in one statement that commits on its own,
/// provided the payment's status is still `read` (none: no payment yet).
/// If it is not, the statement writes nothing, the claim included, and
/// fails as a serialization failure: the caller decided from a status that
/// has changed. Returns whether the claim was new (if not, a delivery of
/// the same command claimed it first, and nothing was written).
#[allow(clippy::too_many_arguments)]
pub async fn claim_recording(
    conn: &mut PgConnection,
    consumer: &str,
    (message_id, message_type): (uuid::Uuid, &str),
    order: OrderId,
    read: Option<Status>,
    change: Change<'_>,
    entry: Entry<'_>,
    outbox: &OutboxRows,
) -> Result<bool, StoreError> {
    let currency = entry.amount.map(|a| a.currency());
    let key = IdempotencyKey::new(order, entry.operation);
    let claimed = sqlx::query_scalar!(
        r#"WITH claimed AS (
               INSERT INTO inbox_messages (consumer, message_id, message_type) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING
               RETURNING message_id
           ), updated AS (
               INSERT INTO payments (order_id, status, authorization_id, decline_code, decline_detail)
               SELECT $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM claimed)
               ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,
                   authorization_id = COALESCE(EXCLUDED.authorization_id, payments.authorization_id),
                   decline_code = COALESCE(EXCLUDED.decline_code, payments.decline_code),
                   decline_detail = COALESCE(EXCLUDED.decline_detail, payments.decline_detail),
                   updated_at = now()
                WHERE payments.status IS NOT DISTINCT FROM $9
               RETURNING order_id
           ), sent AS (
               INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers)
               SELECT id, topic, key, payload, headers
                 FROM UNNEST($16::UUID[], $17::TEXT[], $18::TEXT[], $19::BYTEA[], $20::JSONB[])
                      WITH ORDINALITY AS m(id, topic, key, payload, headers, n)
                WHERE EXISTS (SELECT 1 FROM updated)
                ORDER BY n
           ), logged AS (
               INSERT INTO payment_operations (order_id, operation, outcome, amount_minor, currency, detail,
                                               idempotency_key)
               SELECT $4, $10, $11, $12, $13, $14, $15 WHERE EXISTS (SELECT 1 FROM updated)
           )
           SELECT EXISTS (SELECT 1 FROM claimed) AS "claimed!"
             FROM (SELECT checkout_write_guard(
                       NOT EXISTS (SELECT 1 FROM claimed) OR EXISTS (SELECT 1 FROM updated),
                       'the payment changed since its status was read')) AS guard"#,
        consumer,
        message_id,
        message_type,
        order.as_uuid(),
        change.status as Status,
        change.authorization_id,
        change.decline.map(|(code, _)| decline_text(code)),
        change.decline.map(|(_, detail)| detail),
        read.map(Status::as_str),
        entry.operation.as_str(),
        entry.outcome,
        entry.amount.map(|a| a.amount_minor()),
        currency.as_ref().map(Currency::code),
        entry.detail,
        key.as_str(),
        &outbox.ids,
        &outbox.topics as &[&str],
        &outbox.keys,
        &outbox.payloads,
        &outbox.headers,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(claimed)
}

/// Appends to the payment's audit trail.
pub async fn record_operation(
    executor: impl PgExecutor<'_>,
    order: OrderId,
    entry: Entry<'_>,
) -> Result<(), StoreError> {
    let currency = entry.amount.map(|a| a.currency());
    let key = IdempotencyKey::new(order, entry.operation);
    sqlx::query!(
        "INSERT INTO payment_operations (order_id, operation, outcome, amount_minor, currency, detail, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        order.as_uuid(),
        entry.operation.as_str(),
        entry.outcome,
        entry.amount.map(|a| a.amount_minor()),
        currency.as_ref().map(Currency::code),
        entry.detail,
        key.as_str(),
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// One entry of a payment's audit trail, as stored.
#[derive(Debug)]
pub struct OperationRecord {
    pub operation: String,
    pub outcome: String,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub detail: Option<String>,
    pub at: time::OffsetDateTime,
}

/// The payment's audit trail, oldest first.
pub async fn operations(executor: impl PgExecutor<'_>, order: OrderId) -> Result<Vec<OperationRecord>, StoreError> {
    Ok(sqlx::query_as!(
        OperationRecord,
        "SELECT operation, outcome, amount_minor, currency, detail, at FROM payment_operations WHERE order_id = $1 ORDER BY id",
        order.as_uuid(),
    )
    .fetch_all(executor)
    .await?)
}
