//! The relay publishes committed messages in order, as soon as they commit.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use checkout_messages::{Message, decode};
use checkout_outbox::{OutboxRelay, RelaySettings, RelayStatus};
use checkout_testkit::{TestDatabase, TestKafka, eventually};
use common::{TOPIC, commit_to_outbox, database, new_order, numbered, unpublished};
use rdkafka::Message as _;
use tokio_util::sync::CancellationToken;

fn sequence(record: &rdkafka::message::OwnedMessage) -> (checkout_domain::OrderId, u32) {
    let envelope = decode(record.payload().unwrap()).unwrap().envelope;
    let Message::SagaStepRecorded(step) = envelope.payload else { panic!("unexpected message") };
    (envelope.subject, step.attempt)
}

const ORDERS: usize = 6;
const PER_ORDER: u32 = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_database_publish_each_keys_messages_in_commit_order() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 3).await;
    let settings = RelaySettings { batch_size: 7, ..RelaySettings::default() };
    let shutdown = CancellationToken::new();
    for _ in 0..2 {
        let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), settings.clone());
        tokio::spawn(relay.run(shutdown.clone()));
    }

    // Each order's messages are committed one transaction after another, while
    // other orders commit concurrently and both relays publish.
    let writers: Vec<_> = (0..ORDERS)
        .map(|_| {
            let pool = db.pool.clone();
            tokio::spawn(async move {
                let order = new_order();
                for seq in 1..=PER_ORDER {
                    commit_to_outbox(&pool, &[numbered(order, seq)]).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    let total = ORDERS * PER_ORDER as usize;
    let records = kafka.read(&kafka.names().physical(TOPIC), total, Duration::from_secs(30)).await;
    let mut last: HashMap<_, u32> = HashMap::new();
    for (order, seq) in records.iter().map(sequence) {
        let previous = last.insert(order, seq).unwrap_or(0);
        assert_eq!(seq, previous + 1, "order {order}: message {seq} published after {previous}");
    }
    assert!(last.values().all(|&seq| seq == PER_ORDER));
    // A relay marks its batch after the broker's acknowledgement, so the
    // records can be read before the mark commits.
    eventually(Duration::from_secs(10), "every message marked published", || async {
        (unpublished(&db.pool).await == 0).then_some(())
    })
    .await;
    shutdown.cancel();
}

/// Starts a relay in the background; returns what it counts and its stop switch.
fn run_relay(pool: &sqlx::PgPool, kafka: &TestKafka, settings: RelaySettings) -> (RelayStatus, CancellationToken) {
    let relay = OutboxRelay::new(pool.clone(), kafka.publisher(), kafka.names(), settings);
    let status = relay.status();
    let shutdown = CancellationToken::new();
    tokio::spawn(relay.run(shutdown.clone()));
    (status, shutdown)
}

/// A database with an outbox, and a topic of one partition to publish it
/// to, by its physical name.
async fn outbox_and_topic() -> (TestDatabase, TestKafka, String) {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let topic = kafka.names().physical(TOPIC);
    (db, kafka, topic)
}

/// [`outbox_and_topic`], and two relays with `settings` publishing from the
/// one to the other; the relays stop when the token is cancelled.
async fn two_relays(settings: RelaySettings) -> (TestDatabase, TestKafka, String, CancellationToken) {
    let (db, kafka, topic) = outbox_and_topic().await;
    let shutdown = CancellationToken::new();
    for _ in 0..2 {
        let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), settings.clone());
        tokio::spawn(relay.run(shutdown.clone()));
    }
    (db, kafka, topic, shutdown)
}

/// Commits message 1, waits for it on the topic, then message 2; returns both records.
async fn publish_two_in_turn(pool: &sqlx::PgPool, kafka: &TestKafka) -> Vec<rdkafka::message::OwnedMessage> {
    let topic = kafka.names().physical(TOPIC);
    commit_to_outbox(pool, &[numbered(new_order(), 1)]).await;
    kafka.read(&topic, 1, Duration::from_secs(20)).await;
    commit_to_outbox(pool, &[numbered(new_order(), 2)]).await;
    kafka.read(&topic, 2, Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_the_relay_without_waiting_for_a_poll() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    // Polling so rarely that only a notification can explain a prompt publish.
    let settings = RelaySettings { poll_interval: Duration::from_hours(1), ..RelaySettings::default() };
    let (_, shutdown) = run_relay(&db.pool, &kafka, settings);
    // Once the first is published the relay has drained and waits; only the
    // second commit's notification can wake it.
    let records = publish_two_in_turn(&db.pool, &kafka).await;
    assert_eq!(sequence(&records[1]).1, 2);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_database_never_leave_a_commit_waiting_for_a_poll() {
    // As above: with an hour between polls, every publish is a notification's doing.
    let settings = RelaySettings { poll_interval: Duration::from_hours(1), ..RelaySettings::default() };
    let (db, kafka, topic, shutdown) = two_relays(settings).await;
    // Bursts of concurrent commits: each wakes both relays, again and again
    // after the rows are gone, so passes find the outbox taken or empty;
    // then one commit alone, which only a relay still listening (and a lock
    // not left held by an empty pass) publishes.
    let mut published = 0;
    for burst in 0..5 {
        let commits: Vec<_> = (0..20)
            .map(|seq| {
                let pool = db.pool.clone();
                tokio::spawn(async move { commit_to_outbox(&pool, &[numbered(new_order(), seq)]).await })
            })
            .collect();
        for commit in commits {
            commit.await.unwrap();
        }
        commit_to_outbox(&db.pool, &[numbered(new_order(), 1000 + burst)]).await;
        published += 21;
        let records = kafka.read(&topic, published, Duration::from_secs(20)).await;
        assert_eq!(records.len(), published, "burst {burst}: a commit waited for a poll");
    }
    shutdown.cancel();
}

/// The backends of this database listening, by pid.
const LISTENING: &str = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'";
/// The backends of this database holding an advisory lock (the relay's lease), by pid.
const LEASE_HOLDING: &str = "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
     WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()";

/// The pids `query` selects.
async fn backends(pool: &sqlx::PgPool, query: &'static str) -> Vec<i32> {
    sqlx::query_scalar(query).fetch_all(pool).await.unwrap()
}

async fn terminate(pool: &sqlx::PgPool, pid: i32) {
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(pool).await.unwrap();
}

/// Waits until `query` selects exactly one backend, and not `old`.
async fn another_backend(pool: &sqlx::PgPool, query: &'static str, old: i32, what: &str) {
    eventually(Duration::from_secs(10), what, || async {
        let now = backends(pool, query).await;
        (now.len() == 1 && now[0] != old).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_whose_connection_is_killed_listens_again_by_itself() {
    let (db, kafka, topic) = outbox_and_topic().await;
    // With an hour between polls only the listener can get these published.
    let settings = RelaySettings { poll_interval: Duration::from_hours(1), ..RelaySettings::default() };
    let (_, shutdown) = run_relay(&db.pool, &kafka, settings);
    publish_two_in_turn(&db.pool, &kafka).await;
    let before = backends(&db.pool, LISTENING).await;
    assert_eq!(before.len(), 1, "one listening connection, outside the service's pool");

    terminate(&db.pool, before[0]).await;
    another_backend(&db.pool, LISTENING, before[0], "a new listening connection").await;
    commit_to_outbox(&db.pool, &[numbered(new_order(), 3)]).await;
    let records = kafka.read(&topic, 3, Duration::from_secs(20)).await;
    assert_eq!(sequence(&records[2]).1, 3);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_relay_marks_what_it_published_later_in_one_go_and_never_publishes_it_twice() {
    let (db, kafka, topic) = outbox_and_topic().await;
    // Marks fall due only after an hour, or at shutdown.
    let settings = RelaySettings { mark_interval: Duration::from_hours(1), ..RelaySettings::default() };
    let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), settings);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    // The second commit's pass reads the outbox again: the first row is
    // still unmarked there, and must not go out a second time.
    let order = new_order();
    commit_to_outbox(&db.pool, &[numbered(order, 1)]).await;
    kafka.read(&topic, 1, Duration::from_secs(20)).await;
    commit_to_outbox(&db.pool, &[numbered(order, 2)]).await;
    kafka.read(&topic, 2, Duration::from_secs(20)).await;
    commit_to_outbox(&db.pool, &[numbered(order, 3)]).await;
    let records = kafka.read(&topic, 3, Duration::from_secs(20)).await;
    let seqs: Vec<u32> = records.iter().map(|record| sequence(record).1).collect();
    // A republished first row would be among the first three records.
    assert_eq!(seqs, [1, 2, 3], "each published once, in order");
    assert_eq!(unpublished(&db.pool).await, 3, "published rows wait to be marked");

    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(unpublished(&db.pool).await, 0, "a relay that stops marks what it published");
    assert_eq!(outbox_rows(&db.pool).await, 0, "marking a published row deletes it");
}

async fn outbox_rows(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox_messages").fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_a_relay_of_the_previous_release_marked_is_pruned_and_never_published_again() {
    let (db, kafka, topic) = outbox_and_topic().await;
    // The previous release marked a published row by setting `published_at`.
    let order = new_order();
    commit_to_outbox(&db.pool, &[numbered(order, 1)]).await;
    sqlx::query("UPDATE outbox_messages SET published_at = now()").execute(&db.pool).await.unwrap();
    commit_to_outbox(&db.pool, &[numbered(order, 2)]).await;

    let settings = RelaySettings { prune_interval: Duration::ZERO, ..RelaySettings::default() };
    let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), settings);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let records = kafka.read(&topic, 1, Duration::from_secs(20)).await;
    assert_eq!(sequence(&records[0]).1, 2, "the marked row is not published again; the next one is");
    eventually(Duration::from_secs(20), "both rows to be gone", || {
        let pool = db.pool.clone();
        async move { (outbox_rows(&pool).await == 0).then_some(()) }
    })
    .await;
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_relay_holding_the_outbox_loses_its_connection_the_lease_passes_on_and_nothing_is_lost() {
    let settings = RelaySettings { poll_interval: Duration::from_millis(200), ..RelaySettings::default() };
    let (db, kafka, topic, shutdown) = two_relays(settings).await;
    publish_two_in_turn(&db.pool, &kafka).await;
    // Marked, so the next holder has nothing of them to publish again.
    eventually(Duration::from_secs(10), "the first two marked published", || async {
        (unpublished(&db.pool).await == 0).then_some(())
    })
    .await;
    let holders = backends(&db.pool, LEASE_HOLDING).await;
    assert_eq!(holders.len(), 1, "one relay holds the outbox, and keeps holding it between passes");

    terminate(&db.pool, holders[0]).await;
    let order = new_order();
    for seq in 3..=12 {
        commit_to_outbox(&db.pool, &[numbered(order, seq)]).await;
    }
    let records = kafka.read(&topic, 12, Duration::from_secs(20)).await;
    let seqs: Vec<u32> = records[2..].iter().map(|record| sequence(record).1).collect();
    assert_eq!(seqs, (3..=12).collect::<Vec<_>>(), "published once each, in commit order, after the holder died");
    another_backend(&db.pool, LEASE_HOLDING, holders[0], "a new lease holder").await;
    eventually(Duration::from_secs(10), "every message marked published", || async {
        (unpublished(&db.pool).await == 0).then_some(())
    })
    .await;
    shutdown.cancel();
}

async fn unpublished_positions(pool: &sqlx::PgPool) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT position FROM outbox_messages WHERE published_at IS NULL AND quarantined_at IS NULL ORDER BY position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_holds_back_the_rest_of_its_key_but_no_other_key() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 2).await;
    let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), RelaySettings::default());
    let (held, free) = (new_order(), new_order());
    commit_to_outbox(&db.pool, &[numbered(held, 1), numbered(free, 1), numbered(held, 2), numbered(free, 2)]).await;
    let positions = unpublished_positions(&db.pool).await;
    // The broker does not acknowledge the first message of `held`.
    relay.fail_delivery_of(positions[0]);

    assert_eq!(relay.relay_once().await.unwrap(), 2, "only the other key's messages count as sent");
    assert_eq!(
        unpublished_positions(&db.pool).await,
        vec![positions[0], positions[2]],
        "held's second waits for its first"
    );
    assert_eq!(relay.relay_once().await.unwrap(), 2);
    assert!(unpublished_positions(&db.pool).await.is_empty());

    // On the topic, held's messages come again from the failed one on, in order.
    let records = kafka.read(&kafka.names().physical(TOPIC), 6, Duration::from_secs(20)).await;
    let held_seqs: Vec<u32> =
        records.iter().map(sequence).filter(|(order, _)| *order == held).map(|(_, s)| s).collect();
    assert_eq!(held_seqs, [1, 2, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_can_never_be_published_is_quarantined_and_the_rest_go_on() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), RelaySettings::default());
    commit_to_outbox(&db.pool, &[numbered(new_order(), 1)]).await;
    // A row written by a newer build, naming a topic this one does not know.
    sqlx::query("UPDATE outbox_messages SET topic = 'loyalty.events'").execute(&db.pool).await.unwrap();
    commit_to_outbox(&db.pool, &[numbered(new_order(), 2)]).await;

    assert_eq!(relay.drain().await.unwrap(), 1);
    assert_eq!(relay.status().quarantined(), 1);
    let reason: Option<String> =
        sqlx::query_scalar("SELECT quarantine_reason FROM outbox_messages WHERE topic = 'loyalty.events'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(reason.is_some_and(|r| r.contains("loyalty.events")));
    let records = kafka.read(&kafka.names().physical(TOPIC), 1, Duration::from_secs(20)).await;
    assert_eq!(sequence(&records[0]).1, 2);
    // The next pass does not trip over it again.
    assert_eq!(relay.drain().await.unwrap(), 0);
    assert_eq!(relay.status().quarantined(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_stops_hearing_notifications_counts_it_and_listens_anew() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let settings = RelaySettings { poll_interval: Duration::from_millis(200), ..RelaySettings::default() };
    let (status, shutdown) = run_relay(&db.pool, &kafka, settings);
    let topic = kafka.names().physical(TOPIC);
    // The relay is listening by the second commit; its notification wakes it.
    publish_two_in_turn(&db.pool, &kafka).await;
    eventually(Duration::from_secs(10), "a wake-up by notification", || {
        let woken = status.woken_by_notification();
        async move { (woken >= 1).then_some(()) }
    })
    .await;
    assert_eq!(status.relistens(), 0);

    // From now on commits notify nobody, as when the listener's notifications stop arriving.
    sqlx::query("DROP TRIGGER outbox_messages_notify ON outbox_messages").execute(&db.pool).await.unwrap();
    for seq in 3..=6 {
        commit_to_outbox(&db.pool, &[numbered(new_order(), seq)]).await;
        kafka.read(&topic, usize::try_from(seq).unwrap(), Duration::from_secs(20)).await;
    }
    eventually(Duration::from_secs(10), "the relay to listen anew", || {
        let relistens = status.relistens();
        async move { (relistens >= 1).then_some(()) }
    })
    .await;
    assert!(status.missed_notifications() >= 3, "missed {}", status.missed_notifications());
    assert!(status.woken_by_poll() >= 3);
    shutdown.cancel();
}
