//! The timer's queries: sagas whose deadline passed, and those whose kept-back
//! step reports fell due, locked and decoded row by row.

use checkout_domain::OrderId;
use checkout_outbox::Corrupt;
use checkout_saga::Saga;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{Row, StoreError, StoredSaga, decode, encode};

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
        "SELECT order_id, state, correlation_id, last_message_id, traceparent, failure_traceparent, version
         FROM sagas
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
        "SELECT order_id, state, correlation_id, last_message_id, traceparent, failure_traceparent, version
         FROM sagas
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
        "UPDATE sagas SET state = saved.state, report_due_at = NULL, version = version + 1
         FROM UNNEST($1::UUID[], $2::JSONB[]) AS saved(order_id, state) WHERE sagas.order_id = saved.order_id",
        &orders,
        &states,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
