//! The orchestrator claims a batch's messages and locks their sagas in one
//! statement. Against a real database: batches racing over the same
//! messages (a redelivery beside its original) take each message once, and
//! never deadlock.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use checkout_domain::OrderId;
use checkout_kafka::{Handler, Incoming};
use checkout_messages::payloads::inventory::InventoryCommitted;
use checkout_messages::{Envelope, Message, MessageId, Source};
use checkout_outbox::caused_by;
use checkout_testkit::incoming;
use uuid::Uuid;

use common::Fixture;

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
