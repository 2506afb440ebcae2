//! A unit of work hands the rows it commits to the relay running in its own
//! process: with the outbox's trigger silenced for the writer's connections
//! (`IN_PROCESS`) and polling an hour apart, the relay publishes them in each
//! key's commit order all the same, a failed commit holds up nothing after
//! it, and a relay that does not hold the outbox tells the one that does.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use checkout_domain::OrderId;
use checkout_messages::{Message, decode};
use checkout_outbox::{IN_PROCESS, OutboxRelay, RelaySettings, RelayStatus, UnitOfWork};
use checkout_testkit::{TestKafka, eventually};
use common::{TOPIC, database, new_order, numbered, unpublished};
use rdkafka::Message as _;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio_util::sync::CancellationToken;

/// The database's pool as a service connects it: its relay takes its rows.
async fn in_process_pool(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options()).clone().options([IN_PROCESS]);
    PgPoolOptions::new().max_connections(8).connect_with(options).await.unwrap()
}

/// Polling too rare to matter: only a handover or a notification publishes.
fn no_polling() -> RelaySettings {
    RelaySettings { poll_interval: Duration::from_secs(3600), ..RelaySettings::default() }
}

/// The (order, sequence number) of each record of `topic`, in the order read.
async fn sent(kafka: &TestKafka, count: usize) -> Vec<(OrderId, u32)> {
    let records = kafka.read(&kafka.names().physical(TOPIC), count, Duration::from_secs(20)).await;
    records
        .iter()
        .map(|record| {
            let envelope = decode(record.payload().unwrap()).unwrap().envelope;
            let Message::SagaStepRecorded(step) = envelope.payload else { panic!("unexpected message") };
            (envelope.subject, step.attempt)
        })
        .collect()
}

/// A relay running with [`no_polling`], once it takes this process's commits.
struct Running {
    status: RelayStatus,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(db: &PgPool, kafka: &TestKafka) -> Self {
        let relay = OutboxRelay::new(db.clone(), kafka.publisher(), kafka.names(), no_polling());
        let status = relay.status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(relay.run(shutdown.clone()));
        started(&status).await;
        Self { status, shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

/// Waits until the running relay takes this process's commits.
async fn started(status: &RelayStatus) {
    eventually(Duration::from_secs(10), "the relay taking handed rows", || async {
        status.takes_handoffs().then_some(())
    })
    .await;
}

async fn commit_one(pool: &PgPool, order: OrderId, seq: u32) {
    let mut work = UnitOfWork::begin(pool).await.unwrap();
    work.send(numbered(order, seq));
    work.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_handed_to_the_relay_and_published_in_each_keys_order_without_a_notification() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let pool = in_process_pool(&db.pool).await;
    let relay = Running::start(&db.pool, &kafka).await;
    let mut listener = PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen("outbox_messages").await.unwrap();

    // Four orders, each with ten transactions one after another, the four
    // side by side, so that commits of different keys interleave.
    let orders: Vec<OrderId> = (0..4).map(|_| new_order()).collect();
    let writers: Vec<_> = orders
        .iter()
        .map(|&order| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for seq in 1..=10 {
                    commit_one(&pool, order, seq).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    let records = sent(&kafka, 40).await;
    let mut by_order: HashMap<OrderId, Vec<u32>> = HashMap::new();
    for (order, seq) in records {
        by_order.entry(order).or_default().push(seq);
    }
    for order in &orders {
        assert_eq!(by_order[order], (1..=10).collect::<Vec<_>>(), "order {order} in commit order, once each");
    }
    assert!(relay.status.woken_by_handoff() > 0, "woken by handovers");
    // A negative can only be waited for: notifications go out at commit, and
    // the last commit was before the records were read.
    let heard = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(heard.is_err(), "the trigger sent no NOTIFY for the in-process writers: {heard:?}");
    eventually(Duration::from_secs(10), "every row marked published", || async {
        (unpublished(&db.pool).await == 0).then_some(())
    })
    .await;
    assert_eq!(kafka.record_count(&kafka.names().physical(TOPIC)), 40, "nothing published twice");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_fails_publishes_nothing_and_holds_up_nothing_after_it() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    sqlx::raw_sql("CREATE TABLE once (id INT UNIQUE DEFERRABLE INITIALLY DEFERRED)").execute(&db.pool).await.unwrap();
    let pool = in_process_pool(&db.pool).await;
    let relay = Running::start(&db.pool, &kafka).await;
    let (failing, after) = (new_order(), new_order());

    // The deferred constraint fails at COMMIT: after the relay was handed
    // the transaction's place, before its rows could be published.
    let mut work = UnitOfWork::begin(&pool).await.unwrap();
    sqlx::query("INSERT INTO once VALUES (1), (1)").execute(work.conn()).await.unwrap();
    work.send(numbered(failing, 1));
    assert!(work.commit().await.is_err(), "the commit fails");
    commit_one(&pool, after, 1).await;

    // Sooner than the relay gives up on a slot still pending (5 s): the
    // failed commit's slot was let go at once.
    let records = kafka.read(&kafka.names().physical(TOPIC), 1, Duration::from_secs(4)).await;
    let envelope = decode(records[0].payload().unwrap()).unwrap().envelope;
    assert_eq!(envelope.subject, after);
    eventually(Duration::from_secs(10), "the later row marked published", || async {
        (unpublished(&db.pool).await == 0).then_some(())
    })
    .await;
    assert_eq!(kafka.record_count(&kafka.names().physical(TOPIC)), 1, "nothing of the failed commit");
    assert!(relay.status.woken_by_handoff() > 0);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_does_not_hold_the_outbox_tells_the_one_that_does() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let pool = in_process_pool(&db.pool).await;
    // Another instance's relay holds the outbox (its lease outlives the pass).
    let holder = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), no_polling());
    assert_eq!(holder.relay_once().await.unwrap(), 0);
    let mut listener = PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen("outbox_messages").await.unwrap();
    // This process's relay is handed the rows but may not publish them.
    let relay = Running::start(&db.pool, &kafka).await;
    let order = new_order();

    commit_one(&pool, order, 1).await;
    let heard = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await;
    assert!(heard.is_ok_and(|notification| notification.is_ok()), "the holder is told of the commit");
    assert_eq!(holder.drain().await.unwrap(), 1, "the holder reads and publishes the row");
    assert_eq!(sent(&kafka, 1).await, vec![(order, 1)]);
    relay.stop().await;
}
