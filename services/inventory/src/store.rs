//! The inventory's tables. Every function runs inside the caller's
//! transaction; products are always locked in SKU order, so concurrent
//! transactions over the same products cannot deadlock.

use checkout_domain::{Currency, Money, OrderId, OrderLine, OrderLines, PricedLine, Pricing, Quantity, Sku};
use checkout_messages::payloads::inventory::RejectionCode;
use checkout_messages::{Envelope, Message};
use checkout_outbox::OutboxRows;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::pricing::{Rejection, StockLevel};

mod products;

pub use products::{Product, ProductChange, available_units, product, products, put_product};

pub type StoreError = checkout_outbox::StoreError<Refusal>;

/// Data the inventory refuses: a stored value its domain does not accept,
/// or an operator's change that would break an invariant.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A stored value the domain refuses: a bug or a hand-edited row.
    #[error("stored inventory data is invalid: {0}")]
    Corrupt(String),
    /// An operator asked for less stock on hand than is reserved.
    #[error("{reserved} units are reserved")]
    BelowReserved { reserved: i32 },
}

pub(crate) fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Refused(Refusal::Corrupt(error.to_string()))
}

/// A reservation's status, stored as its snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "snake_case")]
pub enum Status {
    Held,
    Rejected,
    Released,
    Expired,
    Committed,
}

/// A stored reservation, locked for the caller's transaction.
#[derive(Debug)]
pub struct Reservation {
    pub status: Status,
    pub expires_at: Option<OffsetDateTime>,
    pub rejection: Option<(RejectionCode, Sku, String)>,
}

pub async fn find_reservation(conn: &mut PgConnection, order: OrderId) -> Result<Option<Reservation>, StoreError> {
    let Some(row) = sqlx::query!(
        r#"SELECT status AS "status: Status", expires_at, rejection_code, rejection_sku, rejection_detail
         FROM reservations WHERE order_id = $1 FOR UPDATE"#,
        order.as_uuid(),
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    reservation(row.status, row.expires_at, (row.rejection_code, row.rejection_sku, row.rejection_detail)).map(Some)
}

/// Claims the command `message_id` in `consumer`'s inbox and, when it is
/// new, finds the order's reservation, locked until the caller's
/// transaction ends, in one statement: whether the claim was new, and the
/// reservation. (The lock is taken after the inbox row, as claiming and
/// then locking in two statements would.)
pub async fn claim_and_find(
    conn: &mut PgConnection,
    consumer: &str,
    (message_id, message_type): (Uuid, &str),
    order: OrderId,
) -> Result<(bool, Option<Reservation>), StoreError> {
    let row = sqlx::query!(
        r#"WITH claimed AS (
               INSERT INTO inbox_messages (consumer, message_id, message_type) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING
               RETURNING message_id
           )
           SELECT EXISTS (SELECT 1 FROM claimed) AS "claimed!", r.status AS "status?: Status", r.expires_at,
                  r.rejection_code, r.rejection_sku, r.rejection_detail
             FROM (SELECT 1) AS one
             LEFT JOIN LATERAL (
                 SELECT status, expires_at, rejection_code, rejection_sku, rejection_detail FROM reservations
                  WHERE order_id = $4 AND EXISTS (SELECT 1 FROM claimed)
                    FOR UPDATE
             ) r ON true"#,
        consumer,
        message_id,
        message_type,
        order.as_uuid(),
    )
    .fetch_one(&mut *conn)
    .await?;
    let Some(status) = row.status else { return Ok((row.claimed, None)) };
    let found = reservation(status, row.expires_at, (row.rejection_code, row.rejection_sku, row.rejection_detail))?;
    Ok((row.claimed, Some(found)))
}

fn reservation(
    status: Status,
    expires_at: Option<OffsetDateTime>,
    rejection: (Option<String>, Option<String>, Option<String>),
) -> Result<Reservation, StoreError> {
    let rejection = match rejection {
        (Some(code), Some(sku), Some(detail)) => {
            Some((rejection_code(&code), Sku::parse(sku).map_err(corrupt)?, detail))
        }
        _ => None,
    };
    Ok(Reservation { status, expires_at, rejection })
}

fn rejection_code(text: &str) -> RejectionCode {
    match text {
        "out_of_stock" => RejectionCode::OutOfStock,
        "unknown_sku" => RejectionCode::UnknownSku,
        _ => RejectionCode::Other,
    }
}

/// The reserved lines with the prices quoted when they were reserved.
pub async fn reserved_pricing(conn: &mut PgConnection, order: OrderId) -> Result<Pricing, StoreError> {
    let rows = sqlx::query!(
        "SELECT l.sku, l.quantity, l.unit_price_minor, r.currency AS \"currency!\"
         FROM reservation_lines l JOIN reservations r USING (order_id)
         WHERE l.order_id = $1 ORDER BY l.line_no",
        order.as_uuid(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let lines = rows
        .into_iter()
        .map(|row| {
            let currency = Currency::parse(&row.currency).map_err(corrupt)?;
            Ok(PricedLine {
                sku: Sku::parse(row.sku).map_err(corrupt)?,
                quantity: Quantity::new(u32::try_from(row.quantity).map_err(corrupt)?).map_err(corrupt)?,
                unit_price: Money::new(row.unit_price_minor, currency).map_err(corrupt)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Pricing::new(lines).map_err(corrupt)
}

/// Locks the products in SKU order and reads their price and free stock.
/// The SKUs are read through `(SELECT $1)`, hiding their number from the
/// planner, so the connection reuses one plan instead of planning every call
/// (see the orchestrator's `store::read`).
pub async fn lock_stock(conn: &mut PgConnection, skus: &[String]) -> Result<Vec<StockLevel>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT sku, unit_price_minor, currency, (on_hand - reserved)::BIGINT AS "available!"
           FROM products WHERE sku = ANY((SELECT $1::TEXT[])::TEXT[]) ORDER BY sku FOR UPDATE"#,
        skus,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let currency = Currency::parse(&row.currency).map_err(corrupt)?;
            Ok(StockLevel {
                sku: Sku::parse(row.sku).map_err(corrupt)?,
                unit_price: Money::new(row.unit_price_minor, currency).map_err(corrupt)?,
                available: row.available,
            })
        })
        .collect()
}

/// The SKUs of an order's reserved lines, for locking them in order.
async fn reserved_skus(conn: &mut PgConnection, order: OrderId) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar!("SELECT sku FROM reservation_lines WHERE order_id = $1 ORDER BY sku", order.as_uuid())
        .fetch_all(&mut *conn)
        .await?)
}

/// Where a reservation came from: its conversation, command and trace.
pub struct Lineage<'a> {
    pub cause: &'a Envelope<Message>,
    pub traceparent: Option<String>,
}

/// Holds stock for `pricing`'s lines; `false` if another transaction created
/// the order's reservation first.
pub async fn insert_held(
    conn: &mut PgConnection,
    order: OrderId,
    pricing: &Pricing,
    expires_at: OffsetDateTime,
    lineage: &Lineage<'_>,
) -> Result<bool, StoreError> {
    let currency = pricing.total().currency();
    let lines = pricing.lines();
    let line_numbers: Vec<i32> = (1..).take(lines.len()).collect();
    let skus: Vec<String> = lines.iter().map(|l| l.sku.to_string()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| i32::try_from(l.quantity.get()).unwrap_or(i32::MAX)).collect();
    let prices: Vec<i64> = lines.iter().map(|l| l.unit_price.amount_minor()).collect();
    // The reservation, its lines and the stock it holds in one statement;
    // the lines and the stock only if the reservation is this one's.
    Ok(sqlx::query_scalar!(
        r#"WITH held AS (
               INSERT INTO reservations (order_id, status, currency, expires_at, correlation_id, reserved_by,
                                         traceparent)
               VALUES ($1, 'held', $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING
               RETURNING order_id
           ), lines AS (
               INSERT INTO reservation_lines (order_id, line_no, sku, quantity, unit_price_minor)
               SELECT held.order_id, l.* FROM held, UNNEST($7::INT[], $8::TEXT[], $9::INT[], $10::BIGINT[]) AS l
           ), stock AS (
               UPDATE products p SET reserved = p.reserved + l.quantity, updated_at = now()
                 FROM UNNEST($8::TEXT[], $9::INT[]) AS l(sku, quantity)
                WHERE p.sku = l.sku AND EXISTS (SELECT 1 FROM held)
           )
           SELECT EXISTS (SELECT 1 FROM held) AS "held!""#,
        order.as_uuid(),
        currency.code(),
        expires_at,
        lineage.cause.correlation_id.as_uuid(),
        lineage.cause.id.as_uuid(),
        lineage.traceparent,
        &line_numbers,
        &skus,
        &quantities,
        &prices,
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Records that nothing could be reserved, so a repeated request gets the same answer.
pub async fn insert_rejected(
    conn: &mut PgConnection,
    order: OrderId,
    rejection: &Rejection,
    lineage: &Lineage<'_>,
) -> Result<(), StoreError> {
    let code = match rejection.code() {
        RejectionCode::OutOfStock => "out_of_stock",
        RejectionCode::UnknownSku => "unknown_sku",
        RejectionCode::Other => "other",
    };
    sqlx::query!(
        "INSERT INTO reservations (order_id, status, rejection_code, rejection_sku, rejection_detail, correlation_id, reserved_by)
         VALUES ($1, 'rejected', $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
        order.as_uuid(),
        code,
        rejection.sku().as_str(),
        rejection.to_string(),
        lineage.cause.correlation_id.as_uuid(),
        lineage.cause.id.as_uuid(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that the order's stock must never be held (a release that came
/// first), so a late reservation request is refused.
pub async fn insert_released(conn: &mut PgConnection, order: OrderId, lineage: &Lineage<'_>) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO reservations (order_id, status, correlation_id, reserved_by)
         VALUES ($1, 'released', $2, $3) ON CONFLICT (order_id) DO NOTHING",
        order.as_uuid(),
        lineage.cause.correlation_id.as_uuid(),
        lineage.cause.id.as_uuid(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Gives a held reservation's stock back, leaving it `released` or `expired`.
pub async fn release(conn: &mut PgConnection, order: OrderId, status: Status) -> Result<(), StoreError> {
    move_stock(conn, order, Movement { on_hand: 0, reserved: -1 }, status).await
}

/// Turns a held reservation into a sale: the stock leaves the warehouse.
pub async fn commit_held(conn: &mut PgConnection, order: OrderId) -> Result<(), StoreError> {
    move_stock(conn, order, Movement { on_hand: -1, reserved: -1 }, Status::Committed).await
}

/// Puts a committed reservation's stock back on hand, leaving it `released`.
pub async fn restock(conn: &mut PgConnection, order: OrderId) -> Result<(), StoreError> {
    move_stock(conn, order, Movement { on_hand: 1, reserved: 0 }, Status::Released).await
}

/// How a reservation's lines move its products' counts: each line's
/// quantity times these (-1, 0 or 1).
struct Movement {
    on_hand: i32,
    reserved: i32,
}

/// Moves the stock of the order's reserved lines and sets its reservation's
/// status, in one statement. The products are locked in SKU order first,
/// as [`lock_stock`] does, so that two reservations never wait on each
/// other in a cycle.
async fn move_stock(conn: &mut PgConnection, order: OrderId, by: Movement, status: Status) -> Result<(), StoreError> {
    sqlx::query!(
        "WITH lines AS (
             SELECT sku, quantity FROM reservation_lines WHERE order_id = $1
         ), locked AS (
             SELECT sku FROM products WHERE sku IN (SELECT sku FROM lines) ORDER BY sku FOR UPDATE
         ), moved AS (
             UPDATE products p SET on_hand = p.on_hand + l.quantity * $3, reserved = p.reserved + l.quantity * $4,
                                   updated_at = now()
               FROM lines l
              WHERE p.sku = l.sku AND (SELECT count(*) FROM locked) > 0
         )
         UPDATE reservations SET status = $2, updated_at = now() WHERE order_id = $1",
        order.as_uuid(),
        status as Status,
        by.on_hand,
        by.reserved,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// [`commit_held`] without a transaction around it: claims the command in
/// `consumer`'s inbox and, with the claim, commits the order's reservation
/// if it is held (the stock moved as by [`move_stock`], the reservation
/// locked first, then the products in SKU order) and writes `outbox` (the
/// reply), in one statement that commits on its own. If the reservation is
/// not held (expired, released, never made, committed already), the
/// statement writes nothing, the claim included, and fails as a
/// serialization failure: the caller then decides under the lock. Returns
/// whether the claim was new (if not, a delivery of the same command claimed
/// it first, and nothing was written).
pub async fn claim_and_commit_held(
    conn: &mut PgConnection,
    consumer: &str,
    (message_id, message_type): (Uuid, &str),
    order: OrderId,
    outbox: &OutboxRows,
) -> Result<bool, StoreError> {
    let claimed = sqlx::query_scalar!(
        r#"WITH claimed AS (
               INSERT INTO inbox_messages (consumer, message_id, message_type) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING
               RETURNING message_id
           ), held AS (
               UPDATE reservations SET status = 'committed', updated_at = now()
                WHERE order_id = $4 AND status = 'held' AND EXISTS (SELECT 1 FROM claimed)
               RETURNING order_id
           ), lines AS (
               SELECT sku, quantity FROM reservation_lines WHERE order_id = $4 AND EXISTS (SELECT 1 FROM held)
           ), locked AS (
               SELECT sku FROM products WHERE sku IN (SELECT sku FROM lines) ORDER BY sku FOR UPDATE
           ), moved AS (
               UPDATE products p SET on_hand = p.on_hand - l.quantity, reserved = p.reserved - l.quantity,
                                     updated_at = now()
                 FROM lines l
                WHERE p.sku = l.sku AND (SELECT count(*) FROM locked) > 0
           ), sent AS (
               INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers)
               SELECT id, topic, key, payload, headers
                 FROM UNNEST($5::UUID[], $6::TEXT[], $7::TEXT[], $8::BYTEA[], $9::JSONB[])
                      WITH ORDINALITY AS m(id, topic, key, payload, headers, n)
                WHERE EXISTS (SELECT 1 FROM held)
                ORDER BY n
           )
           SELECT EXISTS (SELECT 1 FROM claimed) AS "claimed!"
             FROM (SELECT checkout_write_guard(
                       NOT EXISTS (SELECT 1 FROM claimed) OR EXISTS (SELECT 1 FROM held),
                       'the reservation is not held')) AS guard"#,
        consumer,
        message_id,
        message_type,
        order.as_uuid(),
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

/// Commits an expired reservation if its stock is still free; returns the
/// first SKU that is no longer available otherwise.
pub async fn commit_expired(conn: &mut PgConnection, order: OrderId) -> Result<Option<Sku>, StoreError> {
    let reserved = reserved_pricing(conn, order).await?;
    let lines = reserved.lines().iter().map(|l| OrderLine { sku: l.sku.clone(), quantity: l.quantity }).collect();
    let lines = OrderLines::new(lines).map_err(corrupt)?;
    let skus = reserved_skus(conn, order).await?;
    let stock = lock_stock(conn, &skus).await?;
    if let Err(rejection) = crate::pricing::price(&lines, &stock) {
        return Ok(Some(rejection.sku().clone()));
    }
    move_stock(conn, order, Movement { on_hand: -1, reserved: 0 }, Status::Committed).await?;
    Ok(None)
}

/// A held reservation whose time ran out.
#[derive(Debug)]
pub struct Expired {
    pub order: OrderId,
    pub correlation_id: Uuid,
    pub reserved_by: Uuid,
    pub traceparent: Option<String>,
}

/// What one expiry pass did.
#[derive(Debug, Default)]
pub struct Swept {
    pub expired: Vec<Expired>,
    /// Reservations that could not be released, set aside: order id and why.
    pub quarantined: Vec<(OrderId, String)>,
}

/// Releases up to `limit` held reservations that expired by `now`. Rows
/// another sweeper is handling are skipped, not waited for. A reservation
/// whose release fails for good is rolled back to its savepoint and
/// quarantined, so one bad row never stops the sweep.
pub async fn expire_due(conn: &mut PgConnection, now: OffsetDateTime, limit: i64) -> Result<Swept, StoreError> {
    let due = sqlx::query!(
        "SELECT order_id, correlation_id, reserved_by, traceparent FROM reservations
         WHERE status = 'held' AND expires_at <= $1 AND quarantined_at IS NULL
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut swept = Swept::default();
    for row in due {
        let order = OrderId::from_uuid(row.order_id);
        let mut savepoint = sqlx::Connection::begin(&mut *conn).await?;
        match release(&mut savepoint, order, Status::Expired).await {
            Ok(()) => {
                savepoint.commit().await?;
                swept.expired.push(Expired {
                    order,
                    correlation_id: row.correlation_id,
                    reserved_by: row.reserved_by,
                    traceparent: row.traceparent,
                });
            }
            Err(StoreError::Database(error)) if checkout_outbox::is_transient(&error) => {
                return Err(StoreError::Database(error));
            }
            Err(error) => {
                savepoint.rollback().await?;
                let reason = error.to_string();
                sqlx::query!(
                    "UPDATE reservations SET quarantined_at = $2, quarantine_reason = $3 WHERE order_id = $1",
                    order.as_uuid(),
                    now,
                    reason,
                )
                .execute(&mut *conn)
                .await?;
                swept.quarantined.push((order, reason));
            }
        }
    }
    Ok(swept)
}
