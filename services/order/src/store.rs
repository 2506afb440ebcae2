//! All of the order service's SQL: the order streams (here) and the read
//! model ([`read_model`]).

pub mod read_model;

use checkout_domain::OrderId;
use checkout_outbox::OutboxRows;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{EventDecodeError, FoldError, OrderEvent, RecordedEvent, StoredEvent};

pub type StoreError = checkout_outbox::StoreError<Refusal>;

/// A stream the order service cannot read or write: a bug or a hand-edited
/// row, never worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("order {order} event {seq}: {source}")]
    Undecodable {
        order: OrderId,
        seq: i64,
        #[source]
        source: EventDecodeError,
    },
    #[error("order {order}: {source}")]
    Fold {
        order: OrderId,
        #[source]
        source: FoldError,
    },
    #[error("an event could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// An order that a request with the same idempotency key created earlier.
#[derive(Debug)]
pub struct Existing {
    pub order_id: OrderId,
    pub fingerprint: String,
    pub trace_id: Option<String>,
}

/// A new order: its head, its first event and what announces it.
#[derive(Debug)]
pub struct NewStream<'a> {
    pub order_id: OrderId,
    pub fingerprint: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub lineage: Lineage,
    pub first: &'a OrderEvent,
}

/// Creates an order's head with its first event (sequence number 1, at the
/// database's clock) and writes `outbox`, in one statement. With an
/// idempotency key already used, creates and writes nothing and returns the
/// order that key created; the caller then drops its transaction.
pub async fn create(
    conn: &mut PgConnection,
    new: &NewStream<'_>,
    outbox: &OutboxRows,
) -> Result<Option<Existing>, StoreError> {
    let stored = new.first.to_stored().map_err(StoreError::refused)?;
    let created = sqlx::query_scalar!(
        r#"WITH created AS (
               INSERT INTO orders (order_id, trace_id, idempotency_key, request_fingerprint, version, last_event_at)
               VALUES ($1, $2, $3, $4, 1, clock_timestamp())
               ON CONFLICT (idempotency_key) DO NOTHING
               RETURNING order_id, last_event_at
           ), appended AS (
               INSERT INTO order_events (order_id, seq, event_id, event_type, schema_version, data, at,
                                         causation_id, correlation_id)
               SELECT order_id, 1, $5, $6, $7, $8, last_event_at, $9, $10 FROM created
           ), sent AS (
               INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers)
               SELECT id, topic, key, payload, headers
                 FROM UNNEST($11::UUID[], $12::TEXT[], $13::TEXT[], $14::BYTEA[], $15::JSONB[])
                      WITH ORDINALITY AS m(id, topic, key, payload, headers, n)
                WHERE EXISTS (SELECT 1 FROM created)
                ORDER BY n
           )
           SELECT EXISTS (SELECT 1 FROM created) AS "created!""#,
        new.order_id.as_uuid(),
        new.trace_id,
        new.idempotency_key,
        new.fingerprint,
        Uuid::now_v7(),
        stored.event_type,
        stored.schema_version,
        stored.data,
        new.lineage.causation_id,
        new.lineage.correlation_id,
        &outbox.ids,
        &outbox.topics as &[&str],
        &outbox.keys,
        &outbox.payloads,
        &outbox.headers,
    )
    .fetch_one(&mut *conn)
    .await?;
    if created {
        return Ok(None);
    }
    // A concurrent request with the same key waited in the insert for the
    // first to commit; this reads the order it created.
    let existing = sqlx::query!(
        "SELECT order_id, request_fingerprint, trace_id FROM orders WHERE idempotency_key = $1",
        new.idempotency_key,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(Existing {
        order_id: OrderId::from_uuid(existing.order_id),
        fingerprint: existing.request_fingerprint,
        trace_id: existing.trace_id,
    }))
}

/// Locks the order's stream until the caller's transaction ends, and gives
/// its version (the sequence number of its last event); `None` when there is
/// no such order.
pub async fn lock(conn: &mut PgConnection, order: OrderId) -> Result<Option<u64>, StoreError> {
    let found = sqlx::query_scalar!("SELECT version FROM orders WHERE order_id = $1 FOR UPDATE", order.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.map(|version| u64::try_from(version).unwrap_or_default()))
}

/// The order's events in stream order; with `as_of`, those appended at or
/// before it.
pub async fn events<'c>(
    executor: impl PgExecutor<'c>,
    order: OrderId,
    as_of: Option<OffsetDateTime>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query!(
        "SELECT seq, event_id, event_type, schema_version, data, at, causation_id, correlation_id
           FROM order_events
          WHERE order_id = $1 AND ($2::TIMESTAMPTZ IS NULL OR at <= $2)
          ORDER BY seq",
        order.as_uuid(),
        as_of,
    )
    .fetch_all(executor)
    .await?;
    rows.into_iter()
        .map(|row| {
            let stored = StoredEvent { event_type: row.event_type, schema_version: row.schema_version, data: row.data };
            let event = OrderEvent::from_stored(stored)
                .map_err(|source| StoreError::Refused(Refusal::Undecodable { order, seq: row.seq, source }))?;
            Ok(RecordedEvent {
                seq: u64::try_from(row.seq).unwrap_or_default(),
                event_id: row.event_id,
                at: row.at,
                causation_id: row.causation_id,
                correlation_id: row.correlation_id,
                event,
            })
        })
        .collect()
}

/// The lineage of the events one change appends.
#[derive(Clone, Copy, Debug)]
pub struct Lineage {
    pub causation_id: Option<Uuid>,
    pub correlation_id: Uuid,
}

/// Appends `events` at the head of the order's stream, stamped by the
/// database's clock, strictly later than the stream's last event, in one
/// statement that also takes the stream's lock: a caller that decided on a
/// fold holds that lock already, and one that needs no fold (a saga's step
/// reports) needs no other statement. Returns their sequence numbers, none
/// when there is no such order.
pub async fn append(
    conn: &mut PgConnection,
    order: OrderId,
    lineage: Lineage,
    events: &[OrderEvent],
) -> Result<Vec<u64>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let Columns { ids, types, versions, data } = Columns::of(events)?;
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let mut sequences = sqlx::query_scalar!(
        "WITH head AS (
             UPDATE orders
                SET version = version + $2,
                    last_event_at = GREATEST(clock_timestamp(), last_event_at + INTERVAL '1 microsecond')
                        + ($2 - 1) * INTERVAL '1 microsecond'
              WHERE order_id = $1
          RETURNING version - $2 AS after, last_event_at - ($2 - 1) * INTERVAL '1 microsecond' AS first_at
         )
         INSERT INTO order_events (order_id, seq, event_id, event_type, schema_version, data, at, causation_id, correlation_id)
         SELECT $1, h.after + e.n, e.id, e.event_type, e.schema_version, e.data,
                h.first_at + (e.n - 1) * INTERVAL '1 microsecond', $7, $8
           FROM head h, UNNEST($3::UUID[], $4::TEXT[], $5::INT[], $6::JSONB[])
                WITH ORDINALITY AS e(id, event_type, schema_version, data, n)
         RETURNING seq",
        order.as_uuid(),
        count,
        &ids,
        &types,
        &versions,
        &data,
        lineage.causation_id,
        lineage.correlation_id,
    )
    .fetch_all(&mut *conn)
    .await?;
    sequences.sort_unstable();
    Ok(sequences.into_iter().map(|seq| u64::try_from(seq).unwrap_or_default()).collect())
}

/// Events as the columns of `order_events`, each with a fresh id.
struct Columns {
    ids: Vec<Uuid>,
    types: Vec<String>,
    versions: Vec<i32>,
    data: Vec<serde_json::Value>,
}

impl Columns {
    fn of(events: &[OrderEvent]) -> Result<Self, StoreError> {
        let mut columns = Self { ids: Vec::new(), types: Vec::new(), versions: Vec::new(), data: Vec::new() };
        for event in events {
            let stored = event.to_stored().map_err(StoreError::refused)?;
            columns.ids.push(Uuid::now_v7());
            columns.types.push(stored.event_type);
            columns.versions.push(stored.schema_version);
            columns.data.push(stored.data);
        }
        Ok(columns)
    }
}

#[cfg(test)]
mod tests {
    use checkout_platform::http::Problem;

    use super::*;

    #[test]
    fn a_request_that_meets_a_database_away_is_told_to_retry_not_that_it_failed() {
        let away = StoreError::Database(sqlx::Error::PoolTimedOut);
        assert_eq!(Problem::storage(away).status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        let corrupt = StoreError::refused(serde_json::from_str::<u8>("x").unwrap_err());
        assert_eq!(Problem::storage(corrupt).status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
