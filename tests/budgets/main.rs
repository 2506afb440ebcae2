//! What one checkout costs, counted rather than timed: Kafka records and
//! their size by topic, and database transactions and statements by
//! service, for a confirmed, a declined and an out-of-stock checkout. The
//! counts are held to the budgets in `budgets.json`; a change that adds a hop
//! or a query fails here and has to raise its budget on purpose
//! (`UPDATE_BUDGETS=1` writes what was measured, with the slack that
//! [`with_slack`] explains).
//!
//! Statements are counted by `pg_stat_statements` (which `stack.sh` loads),
//! in the stack's own databases only. The services' timers and the relays'
//! fallback polls are slowed to once in ten minutes so that only the
//! checkout's own work is counted; each relay is handed the rows its
//! service's transactions commit, as ever.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use checkout_domain::OrderId;
use checkout_messages::Topic;
use checkout_testkit::{TestDatabase, eventually};
use rdkafka::Message as _;
use rdkafka::message::Headers as _;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use support::checkout::{add_product, place};
use support::stack::{SERVICES, Stack};

/// What one checkout may cost.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Budget {
    /// Records produced, by topic (without the test's prefix).
    records: BTreeMap<String, u64>,
    /// Key, value and headers of the largest record, in bytes.
    max_record_bytes: u64,
    /// Average over the checkout's records, in bytes.
    mean_record_bytes: u64,
    /// Transactions committed by `COMMIT`, by service. A statement that
    /// commits on its own (the orchestrator's optimistic reads and writes)
    /// counts as a statement only.
    transactions: BTreeMap<String, u64>,
    /// Statements other than `BEGIN`/`COMMIT`, by service.
    statements: BTreeMap<String, u64>,
}

type Budgets = BTreeMap<String, Budget>;

fn budgets_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("budgets").join("budgets.json")
}

/// Statement and commit counts of each service's database, from `pg_stat_statements`.
async fn database_counts(admin: &mut PgConnection, stack: &Stack) -> BTreeMap<String, (u64, u64)> {
    let mut counts = BTreeMap::new();
    for service in SERVICES {
        let (commits, statements): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(calls) FILTER (WHERE query ILIKE 'commit%'), 0)::BIGINT,
                    COALESCE(SUM(calls) FILTER (WHERE query NOT ILIKE 'begin%' AND query NOT ILIKE 'commit%'
                                                AND query NOT ILIKE 'rollback%'), 0)::BIGINT
               FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
        )
        .bind(&stack.databases[service].name)
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        counts.insert(service.to_owned(), (u64::try_from(commits).unwrap(), u64::try_from(statements).unwrap()));
    }
    counts
}

/// Waits until the databases have been quiet for three samples in a row
/// (the relays' last `UPDATE` follows the last record by a moment).
async fn quiet(admin: &mut PgConnection, stack: &Stack) -> BTreeMap<String, (u64, u64)> {
    let mut last = database_counts(admin, stack).await;
    let mut same = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = database_counts(admin, stack).await;
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same == 2 {
            return last;
        }
    }
    panic!("the databases never went quiet: {last:?}");
}

/// Runs one checkout and counts its database work.
async fn one_checkout(
    admin: &mut PgConnection,
    stack: &Stack,
    items: &[(&str, i64)],
    card: &str,
    last_event: &str,
) -> (OrderId, BTreeMap<String, (u64, u64)>) {
    let before = quiet(admin, stack).await;
    let order = place(stack, "budget@example.com", items, card).await;
    // The saga's last word: its final step recorded on the orchestrator's events.
    let topic = stack.kafka.names().physical(Topic::OrchestratorEvents);
    eventually(Duration::from_secs(60), &format!("{order}'s last step to be recorded"), || {
        let (kafka, topic) = (&stack.kafka, topic.clone());
        async move {
            let count = usize::try_from(kafka.record_count(&topic)).unwrap();
            let records = kafka.read(&topic, count, Duration::from_secs(10)).await;
            records
                .iter()
                .filter(|r| r.key() == Some(order.to_string().as_bytes()))
                .any(|r| r.payload().is_some_and(|p| String::from_utf8_lossy(p).contains(last_event)))
                .then_some(())
        }
    })
    .await;
    let after = quiet(admin, stack).await;
    let spent = after.iter().map(|(service, &(c, s))| {
        let (c0, s0) = before[service];
        let spent = c.checked_sub(c0).zip(s.checked_sub(s0));
        (service.clone(), spent.unwrap_or_else(|| panic!("{service}: counts went down ({c0}, {s0}) -> ({c}, {s})")))
    });
    (order, spent.collect())
}

/// The records each order produced, by topic, with their sizes.
async fn records_by_order(stack: &Stack) -> BTreeMap<String, BTreeMap<String, Vec<u64>>> {
    let names = stack.kafka.names();
    let mut by_order: BTreeMap<String, BTreeMap<String, Vec<u64>>> = BTreeMap::new();
    for topic in Topic::ALL {
        for (physical, logical) in [
            (names.physical(topic), topic.name().to_owned()),
            (names.dead_letter(topic), format!("{}.dlt", topic.name())),
        ] {
            let count = usize::try_from(stack.kafka.record_count(&physical)).unwrap();
            for record in stack.kafka.read(&physical, count, Duration::from_secs(20)).await {
                let headers = record.headers().map_or(0, |headers| {
                    headers.iter().map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len)).sum::<usize>()
                });
                let bytes = record.key().map_or(0, <[u8]>::len) + record.payload().map_or(0, <[u8]>::len) + headers;
                let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
                by_order.entry(key).or_default().entry(logical.clone()).or_default().push(bytes as u64);
            }
        }
    }
    by_order
}

fn measured(records: &BTreeMap<String, Vec<u64>>, database: &BTreeMap<String, (u64, u64)>) -> Budget {
    let sizes: Vec<u64> = records.values().flatten().copied().collect();
    Budget {
        records: records.iter().map(|(topic, sizes)| (topic.clone(), sizes.len() as u64)).collect(),
        max_record_bytes: sizes.iter().copied().max().unwrap_or(0),
        mean_record_bytes: sizes.iter().sum::<u64>() / (sizes.len() as u64).max(1),
        transactions: database.iter().map(|(service, &(commits, _))| (service.clone(), commits)).collect(),
        statements: database.iter().map(|(service, &(_, statements))| (service.clone(), statements)).collect(),
    }
}

/// A budget from a measurement. Records are counted exactly (the path's
/// hops do not vary); sizes get 5 % for ids and timestamps whose text
/// length varies; transactions and statements get 10 % (at least 2) for the
/// relay, which may take one more pass when two wake-ups cross.
fn with_slack(measured: &Budget) -> Budget {
    let slack = |n: u64| n + (n / 10).max(2);
    let slack_map = |map: &BTreeMap<String, u64>| {
        map.iter().map(|(k, &v)| (k.clone(), if v == 0 { 0 } else { slack(v) })).collect()
    };
    Budget {
        records: measured.records.clone(),
        max_record_bytes: measured.max_record_bytes + measured.max_record_bytes / 20,
        mean_record_bytes: measured.mean_record_bytes + measured.mean_record_bytes / 20,
        transactions: slack_map(&measured.transactions),
        statements: slack_map(&measured.statements),
    }
}

/// Where `actual` spends more than `budget`, one line each.
fn overruns(path: &str, actual: &Budget, budget: &Budget) -> Vec<String> {
    let mut over = Vec::new();
    let mut check = |what: String, spent: u64, allowed: u64| {
        if spent > allowed {
            over.push(format!("{path}: {what} is {spent}, over its budget of {allowed}"));
        }
    };
    let topics: std::collections::BTreeSet<&String> = actual.records.keys().chain(budget.records.keys()).collect();
    for topic in topics {
        let spent = actual.records.get(topic).copied().unwrap_or(0);
        check(format!("records on {topic}"), spent, budget.records.get(topic).copied().unwrap_or(0));
    }
    check("the largest record's bytes".into(), actual.max_record_bytes, budget.max_record_bytes);
    check("mean bytes per record".into(), actual.mean_record_bytes, budget.mean_record_bytes);
    for service in SERVICES {
        let allowed = |map: &BTreeMap<String, u64>| map.get(service).copied().unwrap_or(0);
        check(format!("{service} transactions"), allowed(&actual.transactions), allowed(&budget.transactions));
        check(format!("{service} statements"), allowed(&actual.statements), allowed(&budget.statements));
    }
    over
}

fn print(path: &str, actual: &Budget) {
    let records: u64 = actual.records.values().sum();
    let transactions: u64 = actual.transactions.values().sum();
    let statements: u64 = actual.statements.values().sum();
    eprintln!(
        "{path:>13}: {records} records (mean {} B, max {} B), {transactions} transactions, {statements} statements",
        actual.mean_record_bytes, actual.max_record_bytes
    );
    for service in SERVICES {
        eprintln!(
            "{:>13}  {service:<13} {:>3} transactions {:>4} statements",
            "",
            actual.transactions.get(service).copied().unwrap_or(0),
            actual.statements.get(service).copied().unwrap_or(0)
        );
    }
    for (topic, count) in &actual.records {
        eprintln!("{:>13}  {topic:<28} {count:>3} records", "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_checkout_path_stays_within_its_budget_of_records_transactions_and_statements() {
    let quiet_timers = "600000".to_owned();
    let stack = Stack::start(&[
        ("OUTBOX_POLL_INTERVAL_MS", quiet_timers.clone()),
        ("ORCHESTRATOR_TIMER_INTERVAL_MS", quiet_timers.clone()),
        ("INVENTORY_EXPIRY_SWEEP_INTERVAL_MS", quiet_timers),
    ])
    .await;
    let mut admin = PgConnection::connect(&TestDatabase::server_url()).await.unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&mut admin).await.unwrap();
    sqlx::query("SELECT 1 FROM pg_stat_statements LIMIT 1").execute(&mut admin).await.expect(
        "pg_stat_statements must be loaded (shared_preload_libraries); deploy/native/stack.sh up configures it",
    );
    // The view keeps `pg_stat_statements.max` entries (5000) across every
    // database of the server and evicts the least used: after the other
    // tests' databases it is nearly full, and an evicted entry of ours would
    // make a count go down. Nothing else runs while this test does.
    sqlx::query("SELECT pg_stat_statements_reset()").execute(&mut admin).await.unwrap();
    let plenty = add_product(&stack, "BUDGET", 1250, 10).await;
    let none = add_product(&stack, "BUDGET-NONE", 1250, 0).await;

    let paths = [
        ("confirmed", plenty.as_str(), "tok_visa", "notify_customer"),
        ("declined", plenty.as_str(), "tok_insufficient_funds", "notify_cancellation"),
        ("out_of_stock", none.as_str(), "tok_visa", "notify_cancellation"),
    ];
    let mut database = BTreeMap::new();
    for (path, sku, card, last_event) in paths {
        let (order, spent) = one_checkout(&mut admin, &stack, &[(sku, 1)], card, last_event).await;
        database.insert(path, (order, spent));
    }
    let records = records_by_order(&stack).await;
    let actual: Budgets = database
        .iter()
        .map(|(path, (order, spent))| {
            let mine = records.get(&order.to_string()).cloned().unwrap_or_default();
            ((*path).to_owned(), measured(&mine, spent))
        })
        .collect();
    for (path, budget) in &actual {
        print(path, budget);
    }

    if std::env::var_os("UPDATE_BUDGETS").is_some() {
        let budgets: Budgets = actual.iter().map(|(path, spent)| (path.clone(), with_slack(spent))).collect();
        let mut text = serde_json::to_string_pretty(&budgets).unwrap();
        text.push('\n');
        std::fs::write(budgets_file(), text).unwrap();
        return;
    }
    let budgets: Budgets = serde_json::from_str(&std::fs::read_to_string(budgets_file()).unwrap()).unwrap();
    let mut over = Vec::new();
    for (path, spent) in &actual {
        let budget = budgets.get(path).unwrap_or_else(|| panic!("no budget for the {path} path"));
        over.extend(overruns(path, spent, budget));
    }
    assert!(
        over.is_empty(),
        "over budget (raise tests/budgets/budgets.json on purpose, or UPDATE_BUDGETS=1):\n{}",
        over.join("\n")
    );
    for path in actual.keys() {
        let (records, budget): (u64, u64) = (actual[path].records.values().sum(), budgets[path].records.values().sum());
        assert!(records > 0 && records <= budget, "{path}: {records} records counted");
    }
}
