//! The saga tables: state, history, and the queries the timer and the API need.

use std::collections::{HashMap, HashSet};

use checkout_domain::OrderId;
use checkout_messages::{CorrelationId, MessageId};
use checkout_saga::{Saga, SagaStatus};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

mod due;

pub use checkout_outbox::StoreError;

/// The orchestrator's name in the inbox.
pub const CONSUMER: &str = "orchestrator";
use checkout_outbox::{InboxRows, OutboxRows};
pub use due::{Due, DueDeadline, due_deadlines, lock_due, lock_reports_due, save_reported};

/// A saga as stored, with the lineage its next timer-driven command continues.
#[derive(Debug, Clone)]
pub struct StoredSaga {
    pub saga: Saga,
    pub correlation_id: CorrelationId,
    pub last_message_id: MessageId,
    pub traceparent: Option<String>,
    pub failure_traceparent: Option<String>,
    /// The version of the row it was read from (`None`: not stored yet). It
    /// is written back only over that version: see [`add_transitions`].
    pub version: Option<i64>,
}

struct Row {
    order_id: uuid::Uuid,
    state: serde_json::Value,
    correlation_id: uuid::Uuid,
    last_message_id: uuid::Uuid,
    traceparent: Option<String>,
    failure_traceparent: Option<String>,
    version: i64,
}

fn decode(row: Row) -> Result<StoredSaga, StoreError> {
    Ok(StoredSaga {
        saga: serde_json::from_value(row.state).map_err(|e| StoreError::corrupt(format!("saga state: {e}")))?,
        correlation_id: CorrelationId::from_uuid(row.correlation_id),
        last_message_id: MessageId::from_uuid(row.last_message_id),
        traceparent: row.traceparent,
        failure_traceparent: row.failure_traceparent,
        version: Some(row.version),
    })
}

/// The order's saga, locked until the caller's transaction ends.
pub async fn lock(conn: &mut PgConnection, order: OrderId) -> Result<Option<StoredSaga>, StoreError> {
    let row = sqlx::query_as!(
        Row,
        "SELECT order_id, state, correlation_id, last_message_id, traceparent, failure_traceparent, version
         FROM sagas WHERE order_id = $1 FOR UPDATE",
        order.as_uuid(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(decode).transpose()
}

/// Which of a batch's messages (`ids`) `consumer` has processed before, and
/// the sagas of `orders` as they are now, in one statement and without
/// locking anything: an optimistic read, which [`add_transitions`] writes
/// back only if nothing it read has changed.
///
/// Each id is looked up by the inbox's whole key (a correlated subquery, not
/// a join or `= ANY`): a plan made while the inbox was small, and kept by
/// the connection, could otherwise scan every row of the consumer's.
///
/// The arrays are read through `(SELECT $n)`, which hides their lengths
/// from the planner: given them, it planned the statement anew at every
/// call (a plan for that many ids cost less than the reusable one), and
/// planning cost more than running it (0.11 against 0.04 ms). Hidden, the
/// reusable plan (the same index lookups) is taken after five calls.
pub async fn read(
    conn: &mut PgConnection,
    consumer: &str,
    ids: &[uuid::Uuid],
    orders: &[OrderId],
) -> Result<(HashSet<uuid::Uuid>, HashMap<OrderId, StoredSaga>), StoreError> {
    let orders: Vec<uuid::Uuid> = orders.iter().map(|order| *order.as_uuid()).collect();
    let rows = sqlx::query!(
        r#"SELECT ARRAY(SELECT m.id FROM UNNEST((SELECT $2::UUID[])) AS m(id)
                         WHERE (SELECT true FROM inbox_messages i WHERE i.consumer = $1 AND i.message_id = m.id))
                    AS "seen!",
                  s.order_id AS "order_id?", s.state AS "state?", s.correlation_id AS "correlation_id?",
                  s.last_message_id AS "last_message_id?", s.traceparent, s.failure_traceparent,
                  s.version AS "version?"
             FROM (SELECT) AS one
             LEFT JOIN sagas s ON s.order_id = ANY((SELECT $3::UUID[])::UUID[])"#,
        consumer,
        ids,
        &orders,
    )
    .fetch_all(&mut *conn)
    .await?;
    let seen: HashSet<uuid::Uuid> = rows.first().map(|row| row.seen.iter().copied().collect()).unwrap_or_default();
    let mut sagas = HashMap::with_capacity(rows.len());
    for row in rows {
        let (Some(order_id), Some(state), Some(correlation_id), Some(last_message_id), Some(version)) =
            (row.order_id, row.state, row.correlation_id, row.last_message_id, row.version)
        else {
            continue;
        };
        let row = Row {
            order_id,
            state,
            correlation_id,
            last_message_id,
            traceparent: row.traceparent,
            failure_traceparent: row.failure_traceparent,
            version,
        };
        sagas.insert(OrderId::from_uuid(order_id), decode(row)?);
    }
    Ok((seen, sagas))
}

fn encode(saga: &Saga) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(saga).map_err(|e| StoreError::corrupt(format!("saga state does not encode: {e}")))
}

/// One entry of a saga's history.
#[derive(Debug)]
pub struct TransitionRecord {
    pub at: OffsetDateTime,
    pub input: String,
    pub message_id: Option<uuid::Uuid>,
    pub from_status: Option<String>,
    pub to_status: String,
    pub step: Option<String>,
    pub commands: Vec<String>,
    pub ignored: Option<String>,
    /// Who asked, for an operator's action.
    pub operator: Option<String>,
    /// The operator's reason.
    pub reason: Option<String>,
}

/// A transition to write: its history entry, and the saga as it left it
/// (`None` when the input changed nothing).
#[derive(Debug)]
pub struct Pending {
    pub order: OrderId,
    pub saved: Option<StoredSaga>,
    pub history: TransitionRecord,
}

/// Adds transitions to their sagas' histories, in the order given, saves
/// each saga they moved (inserted or updated, as the last of its transitions
/// left it), claims `claims` in the orchestrator's inbox and adds the
/// messages they send to the outbox, in one statement however many: what
/// the inputs a batch of messages (or the timer) applies write. `outbox`
/// comes from [`UnitOfWork::take_outbox`]; its rows are inserted as the
/// outbox's own writer inserts them, in the order sent.
///
/// The statement is guarded, so that it may run without a transaction
/// after an unlocked [`read`]: a saga is saved only over the version it was
/// read at (and a new one only where none is), and every message claimed
/// must be new. If any guard fails the statement fails whole with a
/// serialization failure (`40001`) and writes nothing; the caller reads
/// again. Under a lock ([`lock`], [`lock_due`]) the guards always hold.
///
/// [`UnitOfWork::take_outbox`]: checkout_outbox::UnitOfWork::take_outbox
pub async fn add_transitions(
    conn: &mut PgConnection,
    claims: &InboxRows,
    pending: &[Pending],
    outbox: &OutboxRows,
) -> Result<(), StoreError> {
    if claims.ids.is_empty() && pending.is_empty() && outbox.is_empty() {
        return Ok(());
    }
    let mut last: HashMap<OrderId, &StoredSaga> = HashMap::new();
    for write in pending {
        if let Some(saved) = &write.saved {
            last.insert(write.order, saved);
        }
    }
    let mut sagas: Vec<&StoredSaga> = last.into_values().collect();
    sagas.sort_unstable_by_key(|stored| stored.saga.order_id);
    let s = SagaColumns::of(&sagas)?;
    let t = TransitionColumns::of(pending);
    // The inbox rows go in first (the saves wait for them), in message-id
    // order, then the sagas in order-id order: concurrent writes never deadlock.
    sqlx::query_scalar!(
        r#"WITH claimed AS (
             INSERT INTO inbox_messages (consumer, message_id, message_type)
             SELECT $29, id, message_type FROM UNNEST($30::UUID[], $31::TEXT[]) WITH ORDINALITY AS m(id, message_type, n)
              ORDER BY n
             ON CONFLICT DO NOTHING
             RETURNING 1
         ), saved AS (
             INSERT INTO sagas (order_id, status, current_step, deadline, state, correlation_id, last_message_id,
                                traceparent, failure_traceparent, started_at, updated_at, report_due_at, version)
             SELECT * FROM UNNEST($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TIMESTAMPTZ[], $5::JSONB[], $6::UUID[],
                                  $7::UUID[], $8::TEXT[], $9::TEXT[], $10::TIMESTAMPTZ[], $11::TIMESTAMPTZ[],
                                  $23::TIMESTAMPTZ[], $32::BIGINT[])
              WHERE (SELECT count(*) FROM claimed) = cardinality($30::UUID[])
             ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status, current_step = EXCLUDED.current_step,
                 deadline = EXCLUDED.deadline, state = EXCLUDED.state, last_message_id = EXCLUDED.last_message_id,
                 traceparent = EXCLUDED.traceparent, failure_traceparent = EXCLUDED.failure_traceparent,
                 updated_at = EXCLUDED.updated_at, report_due_at = EXCLUDED.report_due_at, version = EXCLUDED.version
               WHERE sagas.version = EXCLUDED.version - 1
             RETURNING 1
         ), sent AS (
             INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers)
             SELECT id, topic, key, payload, headers
               FROM UNNEST($24::UUID[], $25::TEXT[], $26::TEXT[], $27::BYTEA[], $28::JSONB[])
                    WITH ORDINALITY AS m(id, topic, key, payload, headers, n)
              ORDER BY n
         ), added AS (
             INSERT INTO saga_transitions
                 (order_id, at, input, message_id, from_status, to_status, step, commands, ignored, operator, reason)
             SELECT t.order_id, t.at, t.input, t.message_id, t.from_status, t.to_status, t.step,
                    ARRAY(SELECT jsonb_array_elements_text(t.commands)), t.ignored, t.operator, t.reason
               FROM UNNEST($12::UUID[], $13::TIMESTAMPTZ[], $14::TEXT[], $15::UUID[], $16::TEXT[], $17::TEXT[],
                           $18::TEXT[], $19::JSONB[], $20::TEXT[], $21::TEXT[], $22::TEXT[]) WITH ORDINALITY
                    AS t(order_id, at, input, message_id, from_status, to_status, step, commands, ignored,
                         operator, reason, n)
              ORDER BY t.n
         )
         SELECT saga_write_guard((SELECT count(*) FROM claimed), cardinality($30::UUID[]),
                                 (SELECT count(*) FROM saved), cardinality($1::UUID[])) AS "held!""#,
        &s.orders,
        &s.statuses as &[&str],
        &s.steps as &[Option<&str>],
        &s.deadlines as &[Option<OffsetDateTime>],
        &s.states,
        &s.correlations,
        &s.last_messages,
        &s.traceparents as &[Option<&str>],
        &s.failure_traceparents as &[Option<&str>],
        &s.started,
        &s.updated,
        &t.orders,
        &t.at,
        &t.inputs as &[&str],
        &t.message_ids as &[Option<uuid::Uuid>],
        &t.from as &[Option<&str>],
        &t.to as &[&str],
        &t.steps as &[Option<&str>],
        &t.commands,
        &t.ignored as &[Option<&str>],
        &t.operators as &[Option<&str>],
        &t.reasons as &[Option<&str>],
        &s.report_due as &[Option<OffsetDateTime>],
        &outbox.ids,
        &outbox.topics as &[&str],
        &outbox.keys,
        &outbox.payloads,
        &outbox.headers,
        CONSUMER,
        &claims.ids,
        &claims.types as &[&str],
        &s.versions,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(())
}

/// Sagas as the columns of `sagas`, for one `UNNEST`.
#[derive(Default)]
struct SagaColumns<'a> {
    orders: Vec<uuid::Uuid>,
    statuses: Vec<&'static str>,
    steps: Vec<Option<&'static str>>,
    deadlines: Vec<Option<OffsetDateTime>>,
    report_due: Vec<Option<OffsetDateTime>>,
    states: Vec<serde_json::Value>,
    correlations: Vec<uuid::Uuid>,
    last_messages: Vec<uuid::Uuid>,
    traceparents: Vec<Option<&'a str>>,
    failure_traceparents: Vec<Option<&'a str>>,
    started: Vec<OffsetDateTime>,
    updated: Vec<OffsetDateTime>,
    /// The version each is saved as: one more than it was read at, 0 when new.
    versions: Vec<i64>,
}

impl<'a> SagaColumns<'a> {
    fn of(sagas: &[&'a StoredSaga]) -> Result<Self, StoreError> {
        let mut columns = Self::default();
        for stored in sagas {
            let saga = &stored.saga;
            let state = encode(saga)?;
            columns.orders.push(*saga.order_id.as_uuid());
            columns.statuses.push(saga.status().as_str());
            columns.steps.push(saga.active().map(|active| active.step.as_str()));
            columns.deadlines.push(saga.deadline());
            columns.report_due.push(saga.report_due());
            columns.states.push(state);
            columns.correlations.push(*stored.correlation_id.as_uuid());
            columns.last_messages.push(*stored.last_message_id.as_uuid());
            columns.traceparents.push(stored.traceparent.as_deref());
            columns.failure_traceparents.push(stored.failure_traceparent.as_deref());
            columns.started.push(saga.started_at);
            columns.updated.push(saga.updated_at);
            columns.versions.push(stored.version.map_or(0, |read| read + 1));
        }
        Ok(columns)
    }
}

/// History entries as the columns of `saga_transitions`, for one `UNNEST`.
#[derive(Default)]
struct TransitionColumns<'a> {
    orders: Vec<uuid::Uuid>,
    at: Vec<OffsetDateTime>,
    inputs: Vec<&'a str>,
    message_ids: Vec<Option<uuid::Uuid>>,
    from: Vec<Option<&'a str>>,
    to: Vec<&'a str>,
    steps: Vec<Option<&'a str>>,
    /// Each entry's commands, a JSON array (`UNNEST` cannot take an array of arrays of unequal lengths).
    commands: Vec<serde_json::Value>,
    ignored: Vec<Option<&'a str>>,
    operators: Vec<Option<&'a str>>,
    reasons: Vec<Option<&'a str>>,
}

impl<'a> TransitionColumns<'a> {
    fn of(pending: &'a [Pending]) -> Self {
        let mut columns = Self::default();
        for Pending { order, history, .. } in pending {
            columns.orders.push(*order.as_uuid());
            columns.at.push(history.at);
            columns.inputs.push(&history.input);
            columns.message_ids.push(history.message_id);
            columns.from.push(history.from_status.as_deref());
            columns.to.push(&history.to_status);
            columns.steps.push(history.step.as_deref());
            columns.commands.push(serde_json::Value::from(history.commands.clone()));
            columns.ignored.push(history.ignored.as_deref());
            columns.operators.push(history.operator.as_deref());
            columns.reasons.push(history.reason.as_deref());
        }
        columns
    }
}

pub async fn history(pool: &PgPool, order: OrderId) -> Result<Vec<TransitionRecord>, StoreError> {
    Ok(sqlx::query_as!(
        TransitionRecord,
        r#"SELECT at, input, message_id, from_status, to_status, step, commands AS "commands!", ignored, operator, reason
           FROM saga_transitions WHERE order_id = $1 ORDER BY id"#,
        order.as_uuid(),
    )
    .fetch_all(pool)
    .await?)
}

pub async fn find(pool: &PgPool, order: OrderId) -> Result<Option<Saga>, StoreError> {
    let state = sqlx::query_scalar!("SELECT state FROM sagas WHERE order_id = $1", order.as_uuid())
        .fetch_optional(pool)
        .await?;
    state
        .map(|state| serde_json::from_value(state).map_err(|e| StoreError::corrupt(format!("saga state: {e}"))))
        .transpose()
}

/// A row of `GET /sagas`.
#[derive(Debug)]
pub struct SagaSummary {
    pub order_id: uuid::Uuid,
    pub status: String,
    pub current_step: Option<String>,
    pub deadline: Option<OffsetDateTime>,
    pub started_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Sagas in `status` (any when `None`) not updated since `cutoff`, oldest first.
pub async fn list(
    pool: &PgPool,
    status: Option<SagaStatus>,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<Vec<SagaSummary>, StoreError> {
    Ok(sqlx::query_as!(
        SagaSummary,
        "SELECT order_id, status, current_step, deadline, started_at, updated_at FROM sagas
         WHERE ($1::TEXT IS NULL OR status = $1) AND updated_at <= $2 ORDER BY updated_at LIMIT $3",
        status.map(SagaStatus::as_str),
        cutoff,
        limit,
    )
    .fetch_all(pool)
    .await?)
}

/// The sagas not finished: how many are in each such state, and how many
/// of the running or compensating ones started before `stuck_after` ago
/// (by the database's clock). Finished sagas are counted by counters, so
/// this reads only the unfinished rows (through `sagas_by_status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub by_status: Vec<(SagaStatus, i64)>,
    pub stuck: i64,
}

pub async fn census(pool: &PgPool, stuck_after: std::time::Duration) -> Result<Census, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT status AS "status!", count(*) AS "sagas!",
                  count(*) FILTER (WHERE status IN ('running', 'compensating')
                                     AND started_at < now() - make_interval(secs => $1)) AS "stuck!"
           FROM sagas WHERE status IN ('running', 'compensating', 'needs_attention') GROUP BY status"#,
        stuck_after.as_secs_f64(),
    )
    .fetch_all(pool)
    .await?;
    let mut census = Census::default();
    for row in rows {
        let status = SagaStatus::parse(&row.status)
            .ok_or_else(|| StoreError::corrupt(format!("saga status {:?}", row.status)))?;
        census.by_status.push((status, row.sagas));
        census.stuck += row.stuck;
    }
    Ok(census)
}
