//! The read model's SQL: one row per order, and how far each partition has
//! been read. Only the projection writes here; `GET /orders` reads only here.

use std::collections::HashMap;

use checkout_domain::{Currency, Money, OrderId};
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Status, StepMark, Summary};

/// Held (shared) by every projection transaction and (exclusive) by a
/// rebuild while it swaps tables in, so that no projection write meets a
/// table being swapped.
const SWAP_LOCK: i64 = 0x6f72_6465_725f_726d; // "order_rm"

pub async fn hold_swap_lock_shared(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock_shared($1)", SWAP_LOCK).execute(&mut *conn).await?;
    Ok(())
}

pub async fn hold_swap_lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", SWAP_LOCK).execute(&mut *conn).await?;
    Ok(())
}

struct Row {
    order_id: Uuid,
    customer_id: Option<String>,
    placed_at: Option<OffsetDateTime>,
    status: String,
    total_minor: Option<i64>,
    currency: Option<String>,
    cancellation_code: Option<String>,
    cancel_requested_at: Option<OffsetDateTime>,
    last_step: Option<serde_json::Value>,
    last_step_at: Option<OffsetDateTime>,
    last_step_message_id: Option<Uuid>,
    version: i64,
    updated_at: OffsetDateTime,
}

/// A row that does not read back as a summary (e.g. edited by hand) is
/// rebuilt from the messages still to come rather than stopping the projection.
fn decode(row: Row) -> Summary {
    let total = row.total_minor.zip(row.currency.and_then(|c| Currency::parse(&c).ok()));
    let last_step = match (row.last_step, row.last_step_at, row.last_step_message_id) {
        (Some(entry), Some(at), Some(message_id)) => {
            serde_json::from_value(entry).ok().map(|entry| StepMark { entry, at, message_id })
        }
        _ => None,
    };
    Summary {
        order_id: OrderId::from_uuid(row.order_id),
        customer_id: row.customer_id,
        placed_at: row.placed_at,
        status: Status::parse(&row.status).unwrap_or(Status::Pending),
        total: total.and_then(|(minor, currency)| Money::new(minor, currency).ok()),
        cancellation_code: row.cancellation_code,
        cancel_requested_at: row.cancel_requested_at,
        last_step,
        version: u64::try_from(row.version).unwrap_or_default(),
        updated_at: row.updated_at,
    }
}

/// The rows of `orders`, locked until the caller's transaction ends (in
/// order id order, so two batches never wait on each other in a cycle).
///
/// An order's events come on two topics, so two batches may fold its first
/// events at once. A missing row cannot be locked, and both would then
/// write a row of their own, the later commit overwriting the earlier one's
/// fields; so every missing row is first inserted empty (as
/// [`Summary::new`] has it), and a concurrent insert of the same order waits
/// for this transaction and then finds the row filled.
pub async fn lock_all(conn: &mut PgConnection, orders: &[OrderId]) -> Result<HashMap<OrderId, Summary>, sqlx::Error> {
    let mut ids: Vec<Uuid> = orders.iter().map(|order| *order.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let empty = Summary::new(OrderId::from_uuid(Uuid::nil()));
    sqlx::query!(
        "INSERT INTO order_summaries (order_id, status, version, updated_at)
         SELECT id, $2, $3, $4 FROM UNNEST($1::UUID[]) AS id
         ON CONFLICT (order_id) DO NOTHING",
        &ids,
        empty.status.as_str(),
        i64::try_from(empty.version).unwrap_or_default(),
        empty.updated_at,
    )
    .execute(&mut *conn)
    .await?;
    let rows = sqlx::query_as!(
        Row,
        "SELECT order_id, customer_id, placed_at, status, total_minor, currency, cancellation_code,
                cancel_requested_at, last_step, last_step_at, last_step_message_id, version, updated_at
           FROM order_summaries WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE",
        &ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(decode).map(|summary| (summary.order_id, summary)).collect())
}

pub async fn save(conn: &mut PgConnection, summary: &Summary) -> Result<(), sqlx::Error> {
    let step = summary.last_step.as_ref();
    let entry = step.and_then(|mark| serde_json::to_value(&mark.entry).ok());
    sqlx::query!(
        "INSERT INTO order_summaries (order_id, customer_id, placed_at, status, total_minor, currency, cancellation_code,
                                      cancel_requested_at, last_step, last_step_at, last_step_message_id, version, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (order_id) DO UPDATE SET
             customer_id = EXCLUDED.customer_id, placed_at = EXCLUDED.placed_at, status = EXCLUDED.status,
             total_minor = EXCLUDED.total_minor, currency = EXCLUDED.currency,
             cancellation_code = EXCLUDED.cancellation_code, cancel_requested_at = EXCLUDED.cancel_requested_at,
             last_step = EXCLUDED.last_step, last_step_at = EXCLUDED.last_step_at,
             last_step_message_id = EXCLUDED.last_step_message_id, version = EXCLUDED.version,
             updated_at = EXCLUDED.updated_at",
        summary.order_id.as_uuid(),
        summary.customer_id,
        summary.placed_at,
        summary.status.as_str(),
        summary.total.map(|m| m.amount_minor()),
        summary.total.map(|m| m.currency().code().to_owned()),
        summary.cancellation_code,
        summary.cancel_requested_at,
        entry,
        step.map(|mark| mark.at),
        step.map(|mark| mark.message_id),
        i64::try_from(summary.version).unwrap_or(i64::MAX),
        summary.updated_at,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that the projection has read `topic`/`partition` up to `offset`.
pub async fn advance(conn: &mut PgConnection, topic: &str, partition: i32, offset: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO read_model_positions (topic, partition, next_offset) VALUES ($1, $2, $3::BIGINT + 1)
         ON CONFLICT (topic, partition) DO UPDATE
             SET next_offset = GREATEST(read_model_positions.next_offset, EXCLUDED.next_offset)",
        topic,
        partition,
        offset,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How far the projection has read each partition (next offset).
pub async fn positions<'c>(executor: impl PgExecutor<'c>) -> Result<Vec<(String, i32, i64)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT topic, partition, next_offset FROM read_model_positions ORDER BY topic, partition")
        .fetch_all(executor)
        .await?;
    Ok(rows.into_iter().map(|r| (r.topic, r.partition, r.next_offset)).collect())
}

/// A query across orders: filters, then a page after the cursor, newest first.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub customer_id: Option<String>,
    pub status: Option<Status>,
    pub placed_after: Option<OffsetDateTime>,
    /// Keyset cursor: the (placed_at, order_id) of the last row of the previous page.
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: i64,
}

pub async fn query<'c>(executor: impl PgExecutor<'c>, query: &Query) -> Result<Vec<Summary>, sqlx::Error> {
    let (after_at, after_id) = query.after.unzip();
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT order_id, customer_id, placed_at, status, total_minor, currency, cancellation_code,
                  cancel_requested_at, last_step, last_step_at, last_step_message_id, version, updated_at
             FROM order_summaries
            WHERE placed_at IS NOT NULL
              AND ($1::TEXT IS NULL OR customer_id = $1)
              AND ($2::TEXT IS NULL OR status = $2)
              AND ($3::TIMESTAMPTZ IS NULL OR placed_at > $3)
              AND ($4::TIMESTAMPTZ IS NULL OR (placed_at, order_id) < ($4, $5::UUID))
            ORDER BY placed_at DESC, order_id DESC
            LIMIT $6"#,
        query.customer_id,
        query.status.map(Status::as_str),
        query.placed_after,
        after_at,
        after_id,
        query.limit,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(decode).collect())
}

/// Every row, for comparing two builds of the read model.
pub async fn all<'c>(executor: impl PgExecutor<'c>) -> Result<Vec<Summary>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT order_id, customer_id, placed_at, status, total_minor, currency, cancellation_code,
                cancel_requested_at, last_step, last_step_at, last_step_message_id, version, updated_at
           FROM order_summaries ORDER BY order_id",
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(decode).collect())
}
