//! The read model's SQL: one row per order, and how far each partition has
//! been read. Only the projection writes here; `GET /orders` reads only here.

use std::collections::HashMap;

use checkout_domain::{Currency, Money, OrderId};
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Status, StepMark, Summary};

/// Keeps the live projection off both tables until the caller's transaction
/// ends, for a rebuild's swap: every projection transaction's first write
/// (a summary row's lock, or a position) waits, while queries read on. Each
/// projection transaction locks `order_summaries` before
/// `read_model_positions`, as this does, so the two never wait on each other
/// in a cycle; a statement that waited re-resolves the tables' names, so
/// after a swap it writes to the swapped-in tables. Named with their schema:
/// the rebuild's connection has a search path of its own.
pub async fn lock_live_tables(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("LOCK TABLE public.order_summaries, public.read_model_positions IN EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
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
/// for this transaction and then finds the row filled. Rows are read first:
/// only an order's first fold pays for the insert and a second read.
pub async fn lock_all(conn: &mut PgConnection, orders: &[OrderId]) -> Result<HashMap<OrderId, Summary>, sqlx::Error> {
    let mut ids: Vec<Uuid> = orders.iter().map(|order| *order.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found = select_for_update(conn, &ids).await?;
    if found.len() < ids.len() {
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
        found = select_for_update(conn, &ids).await?;
    }
    Ok(found)
}

/// The ids are read through `(SELECT $1)`, hiding their number from the
/// planner, so the connection reuses one plan instead of planning every call
/// (see the orchestrator's `store::read`).
async fn select_for_update(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<OrderId, Summary>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT order_id, customer_id, placed_at, status, total_minor, currency, cancellation_code,
                cancel_requested_at, last_step, last_step_at, last_step_message_id, version, updated_at
           FROM order_summaries WHERE order_id = ANY((SELECT $1::UUID[])::UUID[]) ORDER BY order_id FOR UPDATE",
        ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(decode).map(|summary| (summary.order_id, summary)).collect())
}

/// How far a fold has read each partition: (topic, partition, offset of the
/// last record folded).
pub type ReadTo<'a> = [(&'a str, i32, i64)];

/// Writes the rows that changed and how far each partition has been read,
/// in one statement. The caller holds the rows' locks (from [`lock_all`]).
pub async fn save(conn: &mut PgConnection, summaries: &[&Summary], read_to: &ReadTo<'_>) -> Result<(), sqlx::Error> {
    let rows = SummaryColumns::of(summaries);
    let (topics, partitions, offsets) = positions_columns(read_to);
    sqlx::query!(
        "WITH saved AS (
             INSERT INTO order_summaries (order_id, customer_id, placed_at, status, total_minor, currency,
                                          cancellation_code, cancel_requested_at, last_step, last_step_at,
                                          last_step_message_id, version, updated_at)
             SELECT * FROM UNNEST($1::UUID[], $2::TEXT[], $3::TIMESTAMPTZ[], $4::TEXT[], $5::BIGINT[], $6::TEXT[],
                                  $7::TEXT[], $8::TIMESTAMPTZ[], $9::JSONB[], $10::TIMESTAMPTZ[], $11::UUID[],
                                  $12::BIGINT[], $13::TIMESTAMPTZ[])
             ON CONFLICT (order_id) DO UPDATE SET
                 customer_id = EXCLUDED.customer_id, placed_at = EXCLUDED.placed_at, status = EXCLUDED.status,
                 total_minor = EXCLUDED.total_minor, currency = EXCLUDED.currency,
                 cancellation_code = EXCLUDED.cancellation_code, cancel_requested_at = EXCLUDED.cancel_requested_at,
                 last_step = EXCLUDED.last_step, last_step_at = EXCLUDED.last_step_at,
                 last_step_message_id = EXCLUDED.last_step_message_id, version = EXCLUDED.version,
                 updated_at = EXCLUDED.updated_at
         )
         INSERT INTO read_model_positions (topic, partition, next_offset)
         SELECT topic, partition, last_offset + 1 FROM UNNEST($14::TEXT[], $15::INT[], $16::BIGINT[])
             AS read_to (topic, partition, last_offset)
         ON CONFLICT (topic, partition) DO UPDATE
             SET next_offset = GREATEST(read_model_positions.next_offset, EXCLUDED.next_offset)",
        &rows.order_ids,
        &rows.customer_ids as &[Option<String>],
        &rows.placed_at as &[Option<OffsetDateTime>],
        &rows.statuses as &[&str],
        &rows.totals as &[Option<i64>],
        &rows.currencies as &[Option<String>],
        &rows.cancellation_codes as &[Option<String>],
        &rows.cancel_requested_at as &[Option<OffsetDateTime>],
        &rows.last_steps as &[Option<serde_json::Value>],
        &rows.last_step_at as &[Option<OffsetDateTime>],
        &rows.last_step_message_ids as &[Option<Uuid>],
        &rows.versions,
        &rows.updated_at,
        &topics as &[&str],
        &partitions,
        &offsets,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Summaries as the columns of `order_summaries`, for one `UNNEST` insert.
#[derive(Default)]
struct SummaryColumns<'a> {
    order_ids: Vec<Uuid>,
    customer_ids: Vec<Option<String>>,
    placed_at: Vec<Option<OffsetDateTime>>,
    statuses: Vec<&'a str>,
    totals: Vec<Option<i64>>,
    currencies: Vec<Option<String>>,
    cancellation_codes: Vec<Option<String>>,
    cancel_requested_at: Vec<Option<OffsetDateTime>>,
    last_steps: Vec<Option<serde_json::Value>>,
    last_step_at: Vec<Option<OffsetDateTime>>,
    last_step_message_ids: Vec<Option<Uuid>>,
    versions: Vec<i64>,
    updated_at: Vec<OffsetDateTime>,
}

impl<'a> SummaryColumns<'a> {
    fn of(summaries: &[&'a Summary]) -> Self {
        let mut columns = Self::default();
        for summary in summaries {
            let step: Option<&StepMark> = summary.last_step.as_ref();
            columns.order_ids.push(*summary.order_id.as_uuid());
            columns.customer_ids.push(summary.customer_id.clone());
            columns.placed_at.push(summary.placed_at);
            columns.statuses.push(summary.status.as_str());
            columns.totals.push(summary.total.map(|m| m.amount_minor()));
            columns.currencies.push(summary.total.map(|m| m.currency().code().to_owned()));
            columns.cancellation_codes.push(summary.cancellation_code.clone());
            columns.cancel_requested_at.push(summary.cancel_requested_at);
            columns.last_steps.push(step.and_then(|mark| serde_json::to_value(&mark.entry).ok()));
            columns.last_step_at.push(step.map(|mark| mark.at));
            columns.last_step_message_ids.push(step.map(|mark| mark.message_id));
            columns.versions.push(i64::try_from(summary.version).unwrap_or(i64::MAX));
            columns.updated_at.push(summary.updated_at);
        }
        columns
    }
}

/// Records how far each partition has been read, when no row changed.
pub async fn advance(conn: &mut PgConnection, read_to: &ReadTo<'_>) -> Result<(), sqlx::Error> {
    let (topics, partitions, offsets) = positions_columns(read_to);
    sqlx::query!(
        "INSERT INTO read_model_positions (topic, partition, next_offset)
         SELECT topic, partition, last_offset + 1 FROM UNNEST($1::TEXT[], $2::INT[], $3::BIGINT[])
             AS read_to (topic, partition, last_offset)
         ON CONFLICT (topic, partition) DO UPDATE
             SET next_offset = GREATEST(read_model_positions.next_offset, EXCLUDED.next_offset)",
        &topics as &[&str],
        &partitions,
        &offsets,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn positions_columns<'a>(read_to: &ReadTo<'a>) -> (Vec<&'a str>, Vec<i32>, Vec<i64>) {
    let topics = read_to.iter().map(|(topic, _, _)| *topic).collect();
    let partitions = read_to.iter().map(|(_, partition, _)| *partition).collect();
    let offsets = read_to.iter().map(|(_, _, offset)| *offset).collect();
    (topics, partitions, offsets)
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
