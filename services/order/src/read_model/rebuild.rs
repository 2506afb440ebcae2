//! Rebuilding the read model by replay: every record of its topics from
//! offset 0 is folded into fresh tables in a schema of their own; then, with
//! the live projection held off (its tables locked), the fresh tables catch up
//! to where the topics end at that moment and take the live tables' place,
//! in one transaction. The live projection carries on from its own offsets
//! afterwards; what it applies again is absorbed (the fold is idempotent).

use std::collections::BTreeMap;
use std::time::Instant;

use checkout_domain::OrderId;
use checkout_kafka::{KafkaSettings, Replay, ReplayError};
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::{TOPICS, project};
use crate::domain::Summary;
use crate::store::read_model as store;

/// The schema the fresh tables are built in.
const SCHEMA: &str = "read_model_rebuild";
/// Records folded per transaction while replaying.
const BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// What a rebuild did.
#[derive(Debug, serde::Serialize)]
pub struct RebuildReport {
    pub records: u64,
    pub orders: usize,
    /// Whether the live projection had read exactly as far as the rebuild
    /// at the swap: only then do `differences` say something is wrong.
    pub live_caught_up: bool,
    /// Rows of the live table that differed from the rebuilt one (or were
    /// missing from either) at the swap.
    pub differences: usize,
    pub swapped: bool,
    pub seconds: f64,
}

/// Rebuilds the read model from offset 0; swaps it in unless `check_only`.
pub async fn rebuild(
    database_url: &secrecy::SecretString,
    kafka: &KafkaSettings,
    check_only: bool,
) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    let options: PgConnectOptions = database_url.expose_secret().parse()?;
    let mut conn = options.options([("search_path", SCHEMA)]).connect().await?;
    for statement in [
        format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"),
        format!("CREATE SCHEMA {SCHEMA}"),
        format!("CREATE TABLE {SCHEMA}.order_summaries (LIKE public.order_summaries INCLUDING ALL)"),
        format!("CREATE TABLE {SCHEMA}.read_model_positions (LIKE public.read_model_positions INCLUDING ALL)"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await?;
    }
    let names = kafka.topic_names();
    let topics: Vec<String> = TOPICS.iter().map(|topic| names.physical(*topic)).collect();
    let mut replay = Replay::start(kafka, &topics).await?;
    let mut records = 0;
    loop {
        let mut tx = conn.begin().await?;
        let folded = fold_batch(&mut tx, &mut replay, BATCH).await?;
        tx.commit().await?;
        records += folded;
        if folded < BATCH as u64 {
            break;
        }
    }

    // The swap: hold the live projection off, catch up, compare, replace.
    let mut tx = conn.begin().await?;
    store::lock_live_tables(&mut tx).await?;
    replay.extend().await?;
    records += fold_batch(&mut tx, &mut replay, usize::MAX).await?;
    let rebuilt = store::all(&mut *tx).await?;
    let rebuilt_positions = store::positions(&mut *tx).await?;
    let (live, live_positions) = live_rows(&mut tx).await?;
    let differences = count_differences(&rebuilt, &live);
    if check_only {
        tx.rollback().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {SCHEMA} CASCADE"))).execute(&mut conn).await?;
    } else {
        for statement in [
            "DROP TABLE public.order_summaries, public.read_model_positions".to_owned(),
            format!("ALTER TABLE {SCHEMA}.order_summaries SET SCHEMA public"),
            format!("ALTER TABLE {SCHEMA}.read_model_positions SET SCHEMA public"),
            format!("DROP SCHEMA {SCHEMA}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(RebuildReport {
        records,
        orders: rebuilt.len(),
        live_caught_up: rebuilt_positions == live_positions,
        differences,
        swapped: !check_only,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn fold_batch(conn: &mut PgConnection, replay: &mut Replay, limit: usize) -> Result<u64, RebuildError> {
    let mut folded = 0;
    let mut records = Vec::new();
    while folded < limit as u64 {
        let Some(record) = replay.next().await? else { break };
        folded += 1;
        if let Some(envelope) = record.envelope {
            records.push((envelope, record.position));
        }
    }
    project(conn, records.iter().map(|(envelope, position)| (envelope, position)), None).await?;
    Ok(folded)
}

type Positions = Vec<(String, i32, i64)>;

/// The live table's rows and positions, read with the same code as the rebuilt ones.
async fn live_rows(conn: &mut PgConnection) -> Result<(Vec<Summary>, Positions), sqlx::Error> {
    sqlx::raw_sql("SET LOCAL search_path = public").execute(&mut *conn).await?;
    let rows = store::all(&mut *conn).await;
    let positions = store::positions(&mut *conn).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET LOCAL search_path = {SCHEMA}"))).execute(&mut *conn).await?;
    Ok((rows?, positions?))
}

fn by_id(rows: &[Summary]) -> BTreeMap<OrderId, &Summary> {
    rows.iter().map(|row| (row.order_id, row)).collect()
}

/// Rows present on one side only, or different.
fn count_differences(rebuilt: &[Summary], live: &[Summary]) -> usize {
    let (rebuilt, live) = (by_id(rebuilt), by_id(live));
    let missing_or_different = rebuilt.iter().filter(|(id, row)| live.get(*id) != Some(*row)).count();
    missing_or_different + live.keys().filter(|id| !rebuilt.contains_key(*id)).count()
}
