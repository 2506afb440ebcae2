//! Delivery is at least once; effects are exactly once.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_kafka::OutgoingRecord;
use checkout_outbox::{OutboxRelay, RelaySettings};
use checkout_testkit::{TestKafka, eventually};
use common::{Counter, TOPIC, commit_to_outbox, consume, database, new_order, numbered, unpublished};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_has_its_effect_once() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 2).await;
    let counter = Counter::new(db.pool.clone());
    let consumer = consume(&kafka, counter.clone()).await;

    let record = OutgoingRecord::for_envelope(&numbered(new_order(), 1), &kafka.names()).unwrap();
    kafka.publisher().publish(&record).await.unwrap();
    kafka.publisher().publish(&record).await.unwrap();

    // A delivery is counted when its handling starts, so wait for the second
    // to be told apart as a duplicate: by then the first has committed (or
    // the duplicate would not be known).
    eventually(Duration::from_secs(20), "the second delivery to be recognised", || {
        let duplicates = counter.duplicates();
        async move { (duplicates >= 1).then_some(()) }
    })
    .await;
    assert!(counter.deliveries() >= 2, "both deliveries reached the handler");
    assert_eq!(counter.total_applied().await, 1);
    assert_eq!(counter.duplicates(), 1);
    consumer.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_crash_between_publish_and_mark_duplicates_and_loses_nothing() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 3).await;
    let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), RelaySettings::default());
    let orders: Vec<_> = (0..4).map(|_| new_order()).collect();
    for seq in 1..=5 {
        let batch: Vec<_> = orders.iter().map(|&order| numbered(order, seq)).collect();
        commit_to_outbox(&db.pool, &batch).await;
    }

    assert_eq!(relay.relay_once_then_crash_before_marking().await.unwrap(), 20);
    assert_eq!(unpublished(&db.pool).await, 20, "nothing was marked: the crash came first");
    assert_eq!(relay.drain().await.unwrap(), 20, "the restarted relay publishes everything again");
    assert_eq!(unpublished(&db.pool).await, 0);

    let counter = Counter::new(db.pool.clone());
    let consumer = consume(&kafka, counter.clone()).await;
    eventually(Duration::from_secs(20), "all forty deliveries", || {
        let deliveries = counter.deliveries();
        async move { (deliveries == 40).then_some(()) }
    })
    .await;
    assert_eq!(counter.total_applied().await, 20, "every message applied exactly once");
    assert_eq!(counter.duplicates(), 20);
    let last: Vec<i32> = sqlx::query_scalar("SELECT last_seq FROM effects").fetch_all(&db.pool).await.unwrap();
    assert_eq!(last, vec![5; 4], "each order's messages were applied in order");
    consumer.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_transaction_publishes_nothing() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let mut tx = db.pool.begin().await.unwrap();
    checkout_outbox::enqueue(&mut tx, &numbered(new_order(), 1)).await.unwrap();
    tx.rollback().await.unwrap();
    let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), RelaySettings::default());
    assert_eq!(relay.drain().await.unwrap(), 0);
}
