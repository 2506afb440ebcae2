//! The payment tables.

use checkout_domain::{Currency, Money, OrderId};
use checkout_messages::payloads::payment::DeclineCode;
use sqlx::{PgConnection, PgExecutor};

use crate::gateway::{IdempotencyKey, Operation};
use crate::ledger::{Payment, Status};

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
    let amount = match (row.amount_minor, row.currency) {
        (Some(minor), Some(currency)) => {
            Some(Money::new(minor, Currency::parse(&currency).map_err(corrupt)?).map_err(corrupt)?)
        }
        _ => None,
    };
    let decline = match (row.decline_code, row.decline_detail) {
        (Some(code), Some(detail)) => Some((decline_code(&code), detail)),
        _ => None,
    };
    Ok(Some(Payment { status: row.status, amount, authorization_id: row.authorization_id, decline }))
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

/// Records, before asking the gateway, that an authorization is under way,
/// so a crash during the call leaves a trace a void can act on.
pub async fn begin_authorization(
    executor: impl PgExecutor<'_>,
    order: OrderId,
    amount: Money,
) -> Result<(), StoreError> {
    let currency = amount.currency();
    sqlx::query!(
        "INSERT INTO payments (order_id, status, amount_minor, currency) VALUES ($1, 'authorizing', $2, $3)
         ON CONFLICT (order_id) DO NOTHING",
        order.as_uuid(),
        amount.amount_minor(),
        currency.code(),
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// The payment's status, locked until the caller's transaction ends.
pub async fn lock_status(conn: &mut PgConnection, order: OrderId) -> Result<Option<Status>, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT status AS "status: Status" FROM payments WHERE order_id = $1 FOR UPDATE"#,
        order.as_uuid()
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Sets the payment's status, creating its row when there is none.
pub async fn update(
    conn: &mut PgConnection,
    order: OrderId,
    status: Status,
    authorization_id: Option<&str>,
    decline: Option<(DeclineCode, &str)>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO payments (order_id, status, authorization_id, decline_code, decline_detail) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,
             authorization_id = COALESCE(EXCLUDED.authorization_id, payments.authorization_id),
             decline_code = COALESCE(EXCLUDED.decline_code, payments.decline_code),
             decline_detail = COALESCE(EXCLUDED.decline_detail, payments.decline_detail),
             updated_at = now()",
        order.as_uuid(),
        status as Status,
        authorization_id,
        decline.map(|(code, _)| decline_text(code)),
        decline.map(|(_, detail)| detail),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Appends to the payment's audit trail.
pub async fn record_operation(
    executor: impl PgExecutor<'_>,
    order: OrderId,
    operation: Operation,
    outcome: &str,
    amount: Option<Money>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    let currency = amount.map(|a| a.currency());
    let key = IdempotencyKey::new(order, operation);
    sqlx::query!(
        "INSERT INTO payment_operations (order_id, operation, outcome, amount_minor, currency, detail, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        order.as_uuid(),
        operation.as_str(),
        outcome,
        amount.map(|a| a.amount_minor()),
        currency.as_ref().map(Currency::code),
        detail,
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
