//! The saga tables: state, history, and the queries the timer and the API need.

use std::collections::HashMap;

use checkout_domain::OrderId;
use checkout_messages::{CorrelationId, MessageId};
use checkout_saga::{Saga, SagaStatus};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

pub use checkout_outbox::StoreError;
use checkout_outbox::{Corrupt, OutboxRows};

/// A saga as stored, with the lineage its next timer-driven command continues.
#[derive(Debug, Clone)]
pub struct StoredSaga {
    pub saga: Saga,
    pub correlation_id: CorrelationId,
    pub last_message_id: MessageId,
    pub traceparent: Option<String>,
    pub failure_traceparent: Option<String>,
}

struct Row {
    order_id: uuid::Uuid,
    state: serde_json::Value,
    correlation_id: uuid::Uuid,
    last_message_id: uuid::Uuid,
    traceparent: Option<String>,
    failure_traceparent: Option<String>,
}

fn decode(row: Row) -> Result<StoredSaga, StoreError> {
    Ok(StoredSaga {
        saga: serde_json::from_value(row.state).map_err(|e| StoreError::corrupt(format!("saga state: {e}")))?,
        correlation_id: CorrelationId::from_uuid(row.correlation_id),
        last_message_id: MessageId::from_uuid(row.last_message_id),
        traceparent: row.traceparent,
        failure_traceparent: row.failure_traceparent,
    })
}

/// The order's saga, locked until the caller's transaction ends.
pub async fn lock(conn: &mut PgConnection, order: OrderId) -> Result<Option<StoredSaga>, StoreError> {
    Ok(lock_all(conn, &[order]).await?.remove(&order))
}

/// The sagas of `orders` that exist, locked until the caller's transaction
/// ends, in order-id order (as every batch takes them, so batches never
/// deadlock), in one statement.
pub async fn lock_all(conn: &mut PgConnection, orders: &[OrderId]) -> Result<HashMap<OrderId, StoredSaga>, StoreError> {
    let mut ids: Vec<uuid::Uuid> = orders.iter().map(|order| *order.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = sqlx::query_as!(
        Row,
        "SELECT order_id, state, correlation_id, last_message_id, traceparent, failure_traceparent
         FROM sagas WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE",
        &ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(|row| Ok((OrderId::from_uuid(row.order_id), decode(row)?))).collect()
}

/// Sagas due at `now`, locked, and the due rows that could not be decoded.
#[derive(Debug, Default)]
pub struct Due {
    pub sagas: Vec<StoredSaga>,
    /// Set aside by [`lock_due`]: order id and why.
    pub quarantined: Vec<(OrderId, String)>,
}

/// A saga whose deadline has passed, as the timer first sees it (unlocked).
#[derive(Debug, Clone)]
pub struct DueDeadline {
    pub order: OrderId,
    /// Each step waiting for its reply (`Step::as_str`, `None` when the row
    /// names none) with its own deadline: one, or two side by side.
    pub awaited: Vec<(Option<String>, OffsetDateTime)>,
}

/// Up to `limit` sagas whose deadline passed by `now`, oldest deadline first,
/// without locking them.
pub async fn due_deadlines(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<DueDeadline>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT order_id, current_step, deadline AS "deadline!",
                  state #>> '{state,active,deadline}' AS active_deadline,
                  state #>> '{state,alongside,step}' AS alongside_step,
                  state #>> '{state,alongside,deadline}' AS alongside_deadline
           FROM sagas WHERE deadline <= $1 AND quarantined_at IS NULL ORDER BY deadline LIMIT $2"#,
        now,
        limit,
    )
    .fetch_all(&mut *conn)
    .await?;
    // The steps' own deadlines are read from the saga's state as text and
    // parsed here, so a row whose state does not decode still comes back
    // (with the row's deadline) for the timer to quarantine, and stops no pass.
    let parse = |text: Option<String>| {
        text.and_then(|text| OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).ok())
    };
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut awaited = vec![(row.current_step, parse(row.active_deadline).unwrap_or(row.deadline))];
            if let (Some(step), Some(deadline)) = (row.alongside_step, parse(row.alongside_deadline)) {
                awaited.push((Some(step), deadline));
            }
            DueDeadline { order: OrderId::from_uuid(row.order_id), awaited }
        })
        .collect())
}

/// Sagas whose deadline has passed, locked — all of them up to `limit`, or
/// only those in `among`; sagas another timer holds are skipped. A row that
/// does not decode is quarantined (and no longer due) instead of failing
/// every pass.
pub async fn lock_due(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
    among: Option<&[OrderId]>,
) -> Result<Due, StoreError> {
    let among: Option<Vec<uuid::Uuid>> = among.map(|orders| orders.iter().map(|o| *o.as_uuid()).collect());
    let rows = sqlx::query_as!(
        Row,
        "SELECT order_id, state, correlation_id, last_message_id, traceparent, failure_traceparent FROM sagas
         WHERE deadline <= $1 AND quarantined_at IS NULL AND ($3::uuid[] IS NULL OR order_id = ANY($3))
         ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
        among.as_deref(),
    )
    .fetch_all(&mut *conn)
    .await?;
    sort_out(conn, rows, now).await
}

/// Sagas whose kept-back timeline entries are due by `now`, locked, up to
/// `limit`; sagas another timer (or a message) holds are skipped, and a row
/// that does not decode is quarantined, as by [`lock_due`].
pub async fn lock_reports_due(conn: &mut PgConnection, now: OffsetDateTime, limit: i64) -> Result<Due, StoreError> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT order_id, state, correlation_id, last_message_id, traceparent, failure_traceparent FROM sagas
         WHERE report_due_at <= $1 AND quarantined_at IS NULL
         ORDER BY report_due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    .fetch_all(&mut *conn)
    .await?;
    sort_out(conn, rows, now).await
}

/// Decodes locked rows one by one, quarantining those that do not decode
/// (and are then no longer due), so one bad row never stops a pass.
async fn sort_out(conn: &mut PgConnection, rows: Vec<Row>, now: OffsetDateTime) -> Result<Due, StoreError> {
    let mut due = Due::default();
    for row in rows {
        let order = OrderId::from_uuid(row.order_id);
        match decode(row) {
            Ok(saga) => due.sagas.push(saga),
            Err(StoreError::Refused(Corrupt(reason))) => {
                sqlx::query!(
                    "UPDATE sagas SET quarantined_at = $2, quarantine_reason = $3 WHERE order_id = $1",
                    order.as_uuid(),
                    now,
                    reason,
                )
                .execute(&mut *conn)
                .await?;
                due.quarantined.push((order, reason));
            }
            Err(other) => return Err(other),
        }
    }
    Ok(due)
}

/// Saves sagas whose kept-back entries were just reported (their state
/// without them), in one statement.
pub async fn save_reported(conn: &mut PgConnection, sagas: &[Saga]) -> Result<(), StoreError> {
    let mut orders = Vec::with_capacity(sagas.len());
    let mut states = Vec::with_capacity(sagas.len());
    for saga in sagas {
        orders.push(*saga.order_id.as_uuid());
        states.push(encode(saga)?);
    }
    sqlx::query!(
        "UPDATE sagas SET state = saved.state, report_due_at = NULL
         FROM UNNEST($1::UUID[], $2::JSONB[]) AS saved(order_id, state) WHERE sagas.order_id = saved.order_id",
        &orders,
        &states,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
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
/// left it) and adds the messages they send to the outbox, in one statement
/// however many: what the inputs a batch of messages (or the timer) applies
/// write. `outbox` comes from [`UnitOfWork::take_outbox`]; its rows are
/// inserted as the outbox's own writer inserts them, in the order sent.
///
/// [`UnitOfWork::take_outbox`]: checkout_outbox::UnitOfWork::take_outbox
pub async fn add_transitions(
    conn: &mut PgConnection,
    pending: &[Pending],
    outbox: &OutboxRows,
) -> Result<(), StoreError> {
    if pending.is_empty() && outbox.is_empty() {
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
    sqlx::query!(
        "WITH saved AS (
             INSERT INTO sagas (order_id, status, current_step, deadline, state, correlation_id, last_message_id,
                                traceparent, failure_traceparent, started_at, updated_at, report_due_at)
             SELECT * FROM UNNEST($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TIMESTAMPTZ[], $5::JSONB[], $6::UUID[],
                                  $7::UUID[], $8::TEXT[], $9::TEXT[], $10::TIMESTAMPTZ[], $11::TIMESTAMPTZ[],
                                  $23::TIMESTAMPTZ[])
             ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status, current_step = EXCLUDED.current_step,
                 deadline = EXCLUDED.deadline, state = EXCLUDED.state, last_message_id = EXCLUDED.last_message_id,
                 traceparent = EXCLUDED.traceparent, failure_traceparent = EXCLUDED.failure_traceparent,
                 updated_at = EXCLUDED.updated_at, report_due_at = EXCLUDED.report_due_at
         ), sent AS (
             INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers)
             SELECT id, topic, key, payload, headers
               FROM UNNEST($24::UUID[], $25::TEXT[], $26::TEXT[], $27::BYTEA[], $28::JSONB[])
                    WITH ORDINALITY AS m(id, topic, key, payload, headers, n)
              ORDER BY n
         )
         INSERT INTO saga_transitions
             (order_id, at, input, message_id, from_status, to_status, step, commands, ignored, operator, reason)
         SELECT t.order_id, t.at, t.input, t.message_id, t.from_status, t.to_status, t.step,
                ARRAY(SELECT jsonb_array_elements_text(t.commands)), t.ignored, t.operator, t.reason
           FROM UNNEST($12::UUID[], $13::TIMESTAMPTZ[], $14::TEXT[], $15::UUID[], $16::TEXT[], $17::TEXT[],
                       $18::TEXT[], $19::JSONB[], $20::TEXT[], $21::TEXT[], $22::TEXT[]) WITH ORDINALITY
                AS t(order_id, at, input, message_id, from_status, to_status, step, commands, ignored, operator,
                     reason, n)
          ORDER BY t.n",
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
    )
    .execute(&mut *conn)
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
