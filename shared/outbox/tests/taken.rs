//! Messages a service writes to the outbox in its own statement
//! (`UnitOfWork::take_outbox`): published in the order sent, before what the
//! transaction sends afterwards, and not at all when it rolls back.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_messages::{Message, decode};
use checkout_outbox::{OutboxRelay, OutboxRows, RelaySettings, UnitOfWork};
use checkout_testkit::TestKafka;
use common::{TOPIC, database, new_order, numbered, unpublished};
use rdkafka::Message as _;
use sqlx::PgConnection;

/// A state change's statement that carries the outbox rows as a CTE, as a
/// service's own store writes them.
async fn write_with_state(conn: &mut PgConnection, rows: &OutboxRows) {
    sqlx::query(
        "WITH sent AS (
             INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers)
             SELECT id, topic, key, payload, headers
               FROM UNNEST($1::UUID[], $2::TEXT[], $3::TEXT[], $4::BYTEA[], $5::JSONB[])
                    WITH ORDINALITY AS m(id, topic, key, payload, headers, n)
              ORDER BY n
         )
         INSERT INTO observed (message_id) SELECT UNNEST($1::UUID[])",
    )
    .bind(&rows.ids)
    .bind(&rows.topics)
    .bind(&rows.keys)
    .bind(&rows.payloads)
    .bind(&rows.headers)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_messages_are_published_in_order_before_those_sent_after() {
    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let order = new_order();

    let mut work = UnitOfWork::begin(&db.pool).await.unwrap();
    for seq in 1..=3 {
        work.send(numbered(order, seq));
    }
    let rows = work.take_outbox().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(work.take_outbox().unwrap().is_empty(), "taken once");
    write_with_state(work.conn(), &rows).await;
    for seq in 4..=5 {
        work.send(numbered(order, seq));
    }
    work.commit().await.unwrap();

    let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), RelaySettings::default());
    assert_eq!(relay.drain().await.unwrap(), 5);
    let records = kafka.read(&kafka.names().physical(TOPIC), 5, Duration::from_secs(20)).await;
    let sent: Vec<u32> = records
        .iter()
        .map(|record| {
            let envelope = decode(record.payload().unwrap()).unwrap().envelope;
            assert_eq!(envelope.subject, order);
            let Message::SagaStepRecorded(step) = envelope.payload else { panic!("unexpected message") };
            step.attempt
        })
        .collect();
    assert_eq!(sent, vec![1, 2, 3, 4, 5]);
    let observed: i64 = sqlx::query_scalar("SELECT count(*) FROM observed").fetch_one(&db.pool).await.unwrap();
    assert_eq!(observed, 3, "the state change's statement wrote its part too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_messages_of_a_rolled_back_transaction_are_not_published() {
    let db = database().await;
    let mut work = UnitOfWork::begin(&db.pool).await.unwrap();
    work.send(numbered(new_order(), 1));
    let rows = work.take_outbox().unwrap();
    write_with_state(work.conn(), &rows).await;
    drop(work);
    assert_eq!(unpublished(&db.pool).await, 0);
}
