//! The order tables.

use checkout_domain::{OrderId, Pricing};
use checkout_messages::payloads::order::CancellationReason;
use checkout_messages::payloads::saga::SagaStepRecorded;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

use crate::api::NewOrder;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Confirmed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Confirmed, Self::Cancelled].into_iter().find(|s| s.as_str() == text)
    }
}

/// An order that a request with the same idempotency key created earlier.
#[derive(Debug)]
pub struct Existing {
    pub order_id: OrderId,
    pub fingerprint: String,
    pub trace_id: Option<String>,
}

/// Inserts a new order and its lines. With an idempotency key already used,
/// inserts nothing and returns the order that key created.
pub async fn insert(
    conn: &mut PgConnection,
    order_id: OrderId,
    order: &NewOrder,
    idempotency_key: Option<&str>,
    trace_id: Option<&str>,
) -> Result<Option<Existing>, sqlx::Error> {
    let fingerprint = order.fingerprint();
    let inserted = sqlx::query!(
        "INSERT INTO orders (order_id, customer_id, email, status, trace_id, idempotency_key, request_fingerprint)
         VALUES ($1, $2, $3, 'PENDING', $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING",
        order_id.as_uuid(),
        order.customer_id.as_str(),
        order.email.as_str(),
        trace_id,
        idempotency_key,
        fingerprint,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        // A concurrent request with the same key waits here for the first to
        // commit, then reads the order it created.
        let existing = sqlx::query!(
            "SELECT order_id, request_fingerprint, trace_id FROM orders WHERE idempotency_key = $1",
            idempotency_key,
        )
        .fetch_one(&mut *conn)
        .await?;
        return Ok(Some(Existing {
            order_id: OrderId::from_uuid(existing.order_id),
            fingerprint: existing.request_fingerprint,
            trace_id: existing.trace_id,
        }));
    }
    let numbers: Vec<i32> = (1..).take(order.lines.len()).collect();
    let skus: Vec<String> = order.lines.iter().map(|l| l.sku.to_string()).collect();
    let quantities: Vec<i32> =
        order.lines.iter().map(|l| i32::try_from(l.quantity.get()).unwrap_or(i32::MAX)).collect();
    sqlx::query!(
        "INSERT INTO order_lines (order_id, line_no, sku, quantity) SELECT $1, * FROM UNNEST($2::INT[], $3::TEXT[], $4::INT[])",
        order_id.as_uuid(),
        &numbers,
        &skus,
        &quantities,
    )
    .execute(&mut *conn)
    .await?;
    Ok(None)
}

/// The order's status, locked until the caller's transaction ends.
pub async fn lock_status(conn: &mut PgConnection, order: OrderId) -> Result<Option<Status>, sqlx::Error> {
    let status = sqlx::query_scalar!("SELECT status FROM orders WHERE order_id = $1 FOR UPDATE", order.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(status.and_then(|text| Status::parse(&text)))
}

/// Records the quoted prices on the order's lines, and its total.
pub async fn set_pricing(conn: &mut PgConnection, order: OrderId, pricing: &Pricing) -> Result<(), sqlx::Error> {
    let skus: Vec<String> = pricing.lines().iter().map(|l| l.sku.to_string()).collect();
    let prices: Vec<i64> = pricing.lines().iter().map(|l| l.unit_price.amount_minor()).collect();
    sqlx::query!(
        "UPDATE order_lines l SET unit_price_minor = p.price FROM UNNEST($2::TEXT[], $3::BIGINT[]) AS p(sku, price)
         WHERE l.order_id = $1 AND l.sku = p.sku",
        order.as_uuid(),
        &skus,
        &prices,
    )
    .execute(&mut *conn)
    .await?;
    let total = pricing.total();
    let currency = total.currency();
    sqlx::query!(
        "UPDATE orders SET total_minor = $2, currency = $3, updated_at = now() WHERE order_id = $1",
        order.as_uuid(),
        total.amount_minor(),
        currency.code(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn confirm(conn: &mut PgConnection, order: OrderId) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE orders SET status = 'CONFIRMED', updated_at = now() WHERE order_id = $1", order.as_uuid())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn cancel(conn: &mut PgConnection, order: OrderId, reason: &CancellationReason) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE orders SET status = 'CANCELLED', cancellation_code = $2, cancellation_detail = $3, updated_at = now()
         WHERE order_id = $1",
        order.as_uuid(),
        reason.code.as_str(),
        reason.detail,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds every entry of one saga progress record to the order's timeline,
/// once: a redelivered record adds nothing.
pub async fn add_to_timeline(
    conn: &mut PgConnection,
    message_id: uuid::Uuid,
    order: OrderId,
    recorded: &SagaStepRecorded,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let text = |value: serde_json::Result<serde_json::Value>| {
        value.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    };
    let (mut steps, mut outcomes, mut attempts, mut details) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for entry in recorded.entries() {
        steps.push(text(serde_json::to_value(entry.step)));
        outcomes.push(text(serde_json::to_value(entry.outcome)));
        attempts.push(i32::try_from(entry.attempt).unwrap_or(i32::MAX));
        details.push(entry.detail);
    }
    sqlx::query!(
        "INSERT INTO order_timeline (message_id, entry, order_id, step, outcome, attempt, detail, at)
         SELECT $1, (n - 1)::SMALLINT, $2, step, outcome, attempt, detail, $3
           FROM UNNEST($4::TEXT[], $5::TEXT[], $6::INT[], $7::TEXT[])
                WITH ORDINALITY AS e(step, outcome, attempt, detail, n)
         ON CONFLICT (message_id, entry) DO NOTHING",
        message_id,
        order.as_uuid(),
        at,
        &steps,
        &outcomes,
        &attempts,
        &details as &[Option<String>],
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Everything `GET /orders/{id}` shows.
#[derive(Debug)]
pub struct OrderRecord {
    pub order_id: OrderId,
    pub customer_id: String,
    pub status: String,
    pub cancellation_code: Option<String>,
    pub cancellation_detail: Option<String>,
    pub total_minor: Option<i64>,
    pub currency: Option<String>,
    pub trace_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub lines: Vec<LineRecord>,
    pub timeline: Vec<TimelineRecord>,
}

#[derive(Debug)]
pub struct LineRecord {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: Option<i64>,
}

#[derive(Debug)]
pub struct TimelineRecord {
    pub step: String,
    pub outcome: String,
    pub attempt: i32,
    pub detail: Option<String>,
    pub at: OffsetDateTime,
}

pub async fn load<'c>(
    executor: impl PgExecutor<'c> + Copy,
    order: OrderId,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    let Some(row) = sqlx::query!(
        "SELECT customer_id, status, cancellation_code, cancellation_detail, total_minor, currency, trace_id, created_at, updated_at
         FROM orders WHERE order_id = $1",
        order.as_uuid(),
    )
    .fetch_optional(executor)
    .await?
    else {
        return Ok(None);
    };
    let lines = sqlx::query_as!(
        LineRecord,
        "SELECT sku, quantity, unit_price_minor FROM order_lines WHERE order_id = $1 ORDER BY line_no",
        order.as_uuid(),
    )
    .fetch_all(executor)
    .await?;
    let timeline = sqlx::query_as!(
        TimelineRecord,
        "SELECT step, outcome, attempt, detail, at FROM order_timeline WHERE order_id = $1 ORDER BY at, entry",
        order.as_uuid(),
    )
    .fetch_all(executor)
    .await?;
    Ok(Some(OrderRecord {
        order_id: order,
        customer_id: row.customer_id,
        status: row.status,
        cancellation_code: row.cancellation_code,
        cancellation_detail: row.cancellation_detail,
        total_minor: row.total_minor,
        currency: row.currency,
        trace_id: row.trace_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        lines,
        timeline,
    }))
}
