//! The relay publishes committed messages in order, as soon as they commit.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use checkout_messages::{Message, decode};
use checkout_outbox::{OutboxRelay, RelaySettings};
use checkout_testkit::TestKafka;
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
    assert_eq!(unpublished(&db.pool).await, 0);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_the_relay_without_waiting_for_a_poll() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    // Polling so rarely that only a notification can explain a prompt publish.
    let settings = RelaySettings { poll_interval: Duration::from_hours(1), ..RelaySettings::default() };
    let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), settings);
    let shutdown = CancellationToken::new();
    tokio::spawn(relay.run(shutdown.clone()));
    let topic = kafka.names().physical(TOPIC);

    commit_to_outbox(&db.pool, &[numbered(new_order(), 1)]).await;
    kafka.read(&topic, 1, Duration::from_secs(20)).await;
    // The relay has drained and now waits; only the commit's notification can wake it.
    commit_to_outbox(&db.pool, &[numbered(new_order(), 2)]).await;
    let records = kafka.read(&topic, 2, Duration::from_secs(20)).await;
    assert_eq!(sequence(&records[1]).1, 2);
    shutdown.cancel();
}
