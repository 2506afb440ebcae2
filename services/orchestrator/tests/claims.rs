//! The orchestrator reads a batch's sagas without locking them and writes
//! them back, claiming the batch's messages, in one guarded statement.
//! Against a real database: batches racing over the same messages (a
//! redelivery beside its original) take each message once, and never
//! deadlock; replies racing to one saga are each applied, none lost under
//! another's write.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use checkout_domain::OrderId;
use checkout_kafka::{Handler, Incoming};
use checkout_messages::payloads::inventory::{InventoryCommitted, InventoryReserved};
use checkout_messages::payloads::payment::PaymentAuthorized;
use checkout_messages::{Envelope, Message, MessageId, Source};
use checkout_outbox::caused_by;
use checkout_testkit::incoming;
use uuid::Uuid;

use common::{Fixture, eur, pricing};

fn new_message(like: &Envelope<Message>, order: OrderId) -> Envelope<Message> {
    let mut envelope = like.clone();
    envelope.id = MessageId::from_uuid(Uuid::now_v7());
    envelope.subject = order;
    envelope
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_racing_over_the_same_messages_take_each_once_and_never_deadlock() {
    let fx = Fixture::new().await;
    let other = OrderId::from_uuid(Uuid::now_v7());
    let placed = [fx.placed.clone(), new_message(&fx.placed, other)];
    for envelope in &placed {
        fx.deliver(envelope).await;
    }
    // Replies neither saga awaits (both are reserving): each applied once is
    // one ignored input in its saga's history.
    let now = checkout_platform::clock::now();
    let participant = Source::service("participant");
    let messages: Vec<Envelope<Message>> =
        (0..6).map(|n| caused_by(&placed[n % 2], &participant, now, InventoryCommitted {})).collect();

    for round in 0..5 {
        // Each batch holds a different run of the messages, of both sagas.
        let batches: Vec<_> = (0..8)
            .map(|start| {
                let handler = fx.handler();
                let batch: Vec<Incoming> =
                    (0..4).map(|k| incoming(messages[(start + round + k) % messages.len()].clone())).collect();
                tokio::spawn(async move { handler.handle_batch(&batch).await })
            })
            .collect();
        for batch in batches {
            batch.await.unwrap().unwrap_or_else(|error| panic!("a batch failed (round {round}): {error}"));
        }
    }
    let ids: Vec<Uuid> = messages.iter().map(|envelope| *envelope.id.as_uuid()).collect();
    let claimed: Vec<Uuid> = sqlx::query_scalar("SELECT message_id FROM inbox_messages WHERE message_id = ANY($1)")
        .bind(&ids)
        .fetch_all(&fx.db.pool)
        .await
        .unwrap();
    let applied: Vec<Uuid> = sqlx::query_scalar("SELECT message_id FROM saga_transitions WHERE message_id = ANY($1)")
        .bind(&ids)
        .fetch_all(&fx.db.pool)
        .await
        .unwrap();
    let all: HashSet<Uuid> = ids.iter().copied().collect();
    for (what, taken) in [("claimed", claimed), ("applied", applied)] {
        let distinct: HashSet<Uuid> = taken.iter().copied().collect();
        assert_eq!(taken.len(), distinct.len(), "a message {what} twice: {taken:?}");
        assert_eq!(distinct, all, "every message {what} once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_racing_to_one_saga_are_each_applied_and_none_is_lost() {
    let fx = Fixture::new().await;
    let now = checkout_platform::clock::now();
    let participant = Source::service("participant");
    let orders: Vec<OrderId> = (0..16).map(|_| OrderId::from_uuid(Uuid::now_v7())).collect();
    let mut replies = Vec::new();
    for order in &orders {
        let placed = new_message(&fx.placed, *order);
        fx.deliver(&placed).await;
        let expires_at = now + std::time::Duration::from_secs(60);
        fx.deliver(&caused_by(&placed, &participant, now, InventoryReserved { pricing: pricing(), expires_at })).await;
        // The saga now awaits both: each reply alone moves it a step, the
        // two together confirm the order.
        let authorized = PaymentAuthorized { authorization_id: format!("auth-{order}"), amount: eur(2500) };
        replies.push(caused_by(&placed, &participant, now, authorized));
        replies.push(caused_by(&placed, &participant, now, InventoryCommitted {}));
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(replies.len()));
    let racing: Vec<_> = replies
        .iter()
        .map(|reply| {
            let (handler, reply, start) = (fx.handler(), incoming(reply.clone()), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                handler.handle(&reply).await
            })
        })
        .collect();
    for reply in racing {
        reply.await.unwrap().unwrap_or_else(|error| panic!("a reply failed: {error}"));
    }
    let confirmations: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT s.order_id, count(o.message_id) FROM sagas s
           LEFT JOIN outbox_messages o
             ON o.message_key = s.order_id::TEXT AND o.topic = 'order.commands'
          GROUP BY s.order_id",
    )
    .fetch_all(&fx.db.pool)
    .await
    .unwrap();
    let lost: Vec<_> = confirmations.iter().filter(|(_, sent)| *sent != 1).collect();
    assert!(lost.is_empty(), "sagas that did not confirm once, a reply lost under the other's write: {lost:?}");
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM saga_transitions WHERE input IN ('PaymentAuthorized', 'InventoryCommitted')",
    )
    .fetch_one(&fx.db.pool)
    .await
    .unwrap();
    assert_eq!(applied, 32, "every reply in its saga's history once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_finds_its_saga_moved_since_its_read_fails_whole_and_the_message_is_applied_again() {
    let fx = Fixture::new().await;
    fx.deliver(&fx.placed).await;
    // Another writer (the timer, an operator) holds the saga.
    let mut other = fx.db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM sagas WHERE order_id = $1 FOR UPDATE")
        .bind(fx.order.as_uuid())
        .execute(&mut *other)
        .await
        .unwrap();
    let now = checkout_platform::clock::now();
    let expires_at = now + std::time::Duration::from_secs(60);
    let reserved =
        caused_by(&fx.placed, &Source::service("inventory"), now, InventoryReserved { pricing: pricing(), expires_at });
    let handler = fx.handler();
    let reply = incoming(reserved.clone());
    let applying = tokio::spawn(async move { handler.handle(&reply).await });
    // The reply has read the saga and waits to write it.
    checkout_testkit::eventually(
        std::time::Duration::from_secs(5),
        "the reply's write to wait for the lock",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&fx.db.pool)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        },
    )
    .await;
    // The other writer moves the saga on (a save, as far as the reply can tell).
    sqlx::query("UPDATE sagas SET version = version + 1 WHERE order_id = $1")
        .bind(fx.order.as_uuid())
        .execute(&mut *other)
        .await
        .unwrap();
    other.commit().await.unwrap();

    applying.await.unwrap().unwrap_or_else(|error| panic!("the reply was not applied again: {error}"));
    let applied: Vec<(String, i64)> = sqlx::query_as(
        "SELECT input, (SELECT count(*) FROM inbox_messages WHERE message_id = $1) FROM saga_transitions ORDER BY id",
    )
    .bind(reserved.id.as_uuid())
    .fetch_all(&fx.db.pool)
    .await
    .unwrap();
    assert_eq!(
        applied,
        [("OrderPlaced".to_owned(), 1), ("InventoryReserved".to_owned(), 1)],
        "the reply applied and claimed once, over the saga as the other writer left it"
    );
    let version: i64 = sqlx::query_scalar("SELECT version FROM sagas").fetch_one(&fx.db.pool).await.unwrap();
    assert_eq!(version, 2, "saved over the other writer's version");
}
