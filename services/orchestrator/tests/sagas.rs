//! The orchestrator against a real database: sagas start, move, time out and
//! survive restarts; every transition is recorded; commands keep the lineage.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_domain::OrderId;
use checkout_kafka::Handler;
use checkout_messages::payloads::inventory::{InventoryCommitted, InventoryReleased, InventoryReserved};
use checkout_messages::payloads::notification::{CustomerNotified, NotificationKind};
use checkout_messages::payloads::order::{OrderCancelled, OrderConfirmed};
use checkout_messages::payloads::payment::{PaymentAuthorized, PaymentCaptured, PaymentVoided};
use checkout_messages::{MessageType, Source};
use checkout_orchestrator::Timer;
use checkout_outbox::{caused_by, first_message};
use checkout_testkit::{incoming, outbox};
use uuid::Uuid;

use common::{Fixture, eur, pricing};

#[tokio::test]
async fn a_placed_order_starts_a_saga_that_reserves_inventory() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    assert_eq!(f.command_types().await, [MessageType::ReserveInventory]);
    assert_eq!(f.status().await, "running");
    assert!(f.reports().await.is_empty(), "the step's start waits to be reported with later entries");
}

#[tokio::test]
async fn the_happy_path_completes_and_every_command_continues_the_conversation() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    let reserved = f.reply(InventoryReserved { pricing: pricing(), expires_at: time::OffsetDateTime::now_utc() }).await;
    f.reply(PaymentAuthorized { authorization_id: "auth-1".into(), amount: eur(2500) }).await;
    let committed = f.reply(InventoryCommitted {}).await;
    f.reply(OrderConfirmed { total: eur(2500) }).await;
    f.reply(PaymentCaptured { amount: eur(2500) }).await;
    f.reply(CustomerNotified { kind: NotificationKind::OrderConfirmed }).await;
    assert_eq!(f.status().await, "completed");
    assert_eq!(
        f.command_types().await,
        [
            MessageType::ReserveInventory,
            MessageType::AuthorizePayment,
            MessageType::CommitInventory,
            MessageType::ConfirmOrder,
            MessageType::CapturePayment,
            MessageType::NotifyOrderConfirmed
        ]
    );
    let commands = f.commands().await;
    assert!(commands.iter().all(|c| c.correlation_id == f.placed.correlation_id && c.subject == f.order));
    assert_eq!(commands[1].causation_id, reserved.id, "AuthorizePayment was caused by InventoryReserved");
    assert_eq!(commands[2].causation_id, reserved.id, "and CommitInventory, sent beside it");
    assert_eq!(commands[3].causation_id, committed.id, "ConfirmOrder by the later of the two replies");
    let transitions: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM saga_transitions").fetch_one(&f.db.pool).await.unwrap();
    assert_eq!(transitions, 7);
}

#[tokio::test]
async fn a_payment_that_never_answers_is_timed_out_by_the_timer_and_compensated() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    f.reply(InventoryReserved { pricing: pricing(), expires_at: time::OffsetDateTime::now_utc() }).await;
    f.reply(InventoryCommitted {}).await;
    f.time_out().await;
    f.time_out().await;
    let types = f.command_types().await;
    assert_eq!(
        types[1..],
        [
            MessageType::AuthorizePayment,
            MessageType::CommitInventory,
            MessageType::AuthorizePayment,
            MessageType::VoidPayment
        ]
    );
    let void = f.commands().await.pop().unwrap();
    assert_eq!(void.correlation_id, f.placed.correlation_id, "timer-driven commands keep the conversation");

    f.reply(PaymentVoided {}).await;
    f.reply(InventoryReleased {}).await;
    f.reply(OrderCancelled {
        reason: checkout_messages::payloads::order::CancellationReason {
            code: checkout_messages::payloads::order::CancellationCode::PaymentTimedOut,
            detail: "the payment provider did not answer".into(),
        },
    })
    .await;
    f.reply(CustomerNotified { kind: NotificationKind::OrderCancelled }).await;
    assert_eq!(f.status().await, "cancelled");
    let deadline: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT deadline FROM sagas").fetch_one(&f.db.pool).await.unwrap();
    assert_eq!(deadline, None, "a finished saga sets no timer");
}

#[tokio::test]
async fn an_input_the_saga_ignores_is_recorded_in_its_history_and_leaves_the_saga_as_it_was() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    let reserved = f.reply(InventoryReserved { pricing: pricing(), expires_at: time::OffsetDateTime::now_utc() }).await;
    let saga = || async {
        sqlx::query_as::<_, (serde_json::Value, time::OffsetDateTime, Uuid)>(
            "SELECT state, updated_at, last_message_id FROM sagas WHERE order_id = $1",
        )
        .bind(f.order.as_uuid())
        .fetch_one(&f.db.pool)
        .await
        .unwrap()
    };
    let before = saga().await;

    // The same answer again under a new message id: not a redelivery, but
    // nothing the saga (now authorizing) waits for.
    let late = caused_by(
        &f.commands().await[0],
        &Source::service("participant"),
        checkout_platform::clock::now(),
        InventoryReserved { pricing: pricing(), expires_at: time::OffsetDateTime::now_utc() },
    );
    assert_ne!(late.id, reserved.id);
    f.deliver(&late).await;

    assert_eq!(saga().await, before, "the saga row is not written");
    let last: (Option<Uuid>, Option<String>, String) = sqlx::query_as(
        "SELECT message_id, ignored, to_status FROM saga_transitions WHERE order_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(f.order.as_uuid())
    .fetch_one(&f.db.pool)
    .await
    .unwrap();
    assert_eq!(last.0, Some(*late.id.as_uuid()), "the ignored input is the history's last entry");
    assert!(last.1.is_some(), "with why it was ignored: {last:?}");
    assert_eq!(last.2, "running");
    assert_eq!(
        f.command_types().await,
        [MessageType::ReserveInventory, MessageType::AuthorizePayment, MessageType::CommitInventory]
    );
}

#[tokio::test]
async fn a_redelivered_message_changes_nothing() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    let reserved = f.reply(InventoryReserved { pricing: pricing(), expires_at: time::OffsetDateTime::now_utc() }).await;
    f.deliver(&reserved).await;
    f.deliver(&f.placed).await;
    assert_eq!(
        f.command_types().await,
        [MessageType::ReserveInventory, MessageType::AuthorizePayment, MessageType::CommitInventory]
    );
}

#[tokio::test]
async fn a_reply_for_an_unknown_saga_is_refused() {
    let f = Fixture::new().await;
    let stray = first_message(&Source::service("payment"), f.order, checkout_platform::clock::now(), PaymentVoided {});
    let error = f.handler().handle(&incoming(stray)).await.unwrap_err();
    assert!(matches!(error, checkout_kafka::HandlerError::Permanent(_)));
}

#[tokio::test]
async fn the_timer_skips_sagas_whose_deadline_has_not_come() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    sqlx::query("UPDATE sagas SET deadline = now() + interval '1 hour'").execute(&f.db.pool).await.unwrap();
    let timer = f.timer();
    assert_eq!(timer.fire_due(time::OffsetDateTime::now_utc()).await.unwrap(), 0);
}

#[tokio::test]
async fn a_saga_row_that_does_not_decode_is_quarantined_and_stops_no_timer_pass() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    sqlx::query("UPDATE sagas SET state = '{\"written_by\": \"a newer build\"}', deadline = now() - interval '1 s'")
        .execute(&f.db.pool)
        .await
        .unwrap();
    let timer = f.timer();
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(timer.fire_due(now).await.unwrap(), 1, "the pass succeeds and sets the row aside");
    let reason = f.quarantine_reason().await;
    assert!(reason.is_some(), "the reason is kept for an operator");
    assert_eq!(timer.fire_due(now).await.unwrap(), 0, "and it is not due again");
}

/// A timer gated by a consumer of three-partition event topics that has
/// processed nothing yet.
fn gated_timer(f: &Fixture) -> (Timer, checkout_kafka::ConsumerStatus) {
    let consumer = checkout_kafka::ConsumerStatus::default();
    let gate = checkout_orchestrator::DeadlineGate::with_partitions(
        consumer.clone(),
        checkout_kafka::KafkaSettings::default(),
        3,
    );
    (f.timer().gated_by(gate), consumer)
}

#[tokio::test]
async fn a_deadline_waits_until_its_reply_partition_is_processed_through_it() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    let now = time::OffsetDateTime::now_utc();
    let deadline = now - Duration::from_secs(1);
    f.set_deadlines(&[deadline]).await;
    let (timer, consumer) = gated_timer(&f);
    // The reservation's reply would come on inventory.events, on the order's partition.
    let (topic, partition) = ("inventory.events", checkout_kafka::partition_for_key(f.order.to_string().as_bytes(), 3));

    assert_eq!(timer.fire_due(now).await.unwrap(), 0, "nobody here consumes that partition");
    consumer.own(topic, partition);
    assert_eq!(timer.fire_due(now).await.unwrap(), 0, "how far it is processed is not known yet");
    consumer.record_progress(topic, partition, deadline - Duration::from_millis(1));
    assert_eq!(timer.fire_due(now).await.unwrap(), 0, "a reply produced before the deadline may be queued");
    consumer.own("inventory.events", (partition + 1) % 3);
    consumer.record_progress(topic, (partition + 1) % 3, now);
    assert_eq!(timer.fire_due(now).await.unwrap(), 0, "another partition's progress says nothing");
    consumer.record_progress(topic, partition, deadline);
    assert_eq!(timer.fire_due(now).await.unwrap(), 1, "processed through the deadline with no reply: timed out");
    assert_eq!(f.command_types().await, [MessageType::ReserveInventory, MessageType::ReserveInventory]);
}

#[tokio::test]
async fn two_steps_awaited_side_by_side_time_out_only_once_each_reply_partition_is_processed_through_its_deadline() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    f.reply(InventoryReserved { pricing: pricing(), expires_at: time::OffsetDateTime::now_utc() }).await;
    let now = time::OffsetDateTime::now_utc();
    // The authorization (first) is due a second before the commit.
    let (authorize, commit) = (now - Duration::from_secs(2), now - Duration::from_secs(1));
    f.set_deadlines(&[authorize, commit]).await;
    let (timer, consumer) = gated_timer(&f);
    let partition = checkout_kafka::partition_for_key(f.order.to_string().as_bytes(), 3);
    // The authorization's reply comes on payment.events, the commit's on inventory.events.
    consumer.own("payment.events", partition);
    consumer.record_progress("payment.events", partition, authorize);
    assert_eq!(timer.fire_due(now).await.unwrap(), 0, "the commit's reply may still be queued");
    consumer.own("inventory.events", partition);
    consumer.record_progress("inventory.events", partition, authorize);
    assert_eq!(timer.fire_due(now).await.unwrap(), 0, "a commit reply produced before its own deadline may be queued");
    consumer.record_progress("inventory.events", partition, commit);
    assert_eq!(timer.fire_due(now).await.unwrap(), 1, "neither reply was produced by its deadline: timed out");
    let types = f.command_types().await;
    assert_eq!(types[3..], [MessageType::AuthorizePayment, MessageType::CommitInventory], "both sent again");
}

#[tokio::test]
async fn a_batch_moves_the_saga_as_one_by_one_deliveries_would_in_one_transaction() {
    let f = Fixture::new().await;
    let now = checkout_platform::clock::now();
    let reserved = caused_by(
        &f.placed,
        &Source::service("inventory"),
        now,
        InventoryReserved { pricing: pricing(), expires_at: now + Duration::from_secs(60) },
    );
    let batch = [incoming(f.placed.clone()), incoming(reserved)];
    f.handler().handle_batch(&batch).await.unwrap();
    assert_eq!(
        f.command_types().await,
        [MessageType::ReserveInventory, MessageType::AuthorizePayment, MessageType::CommitInventory]
    );
    let writers: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM saga_transitions GROUP BY xmin::TEXT
         UNION ALL SELECT count(DISTINCT xmin::TEXT) FROM (SELECT xmin FROM saga_transitions
           UNION ALL SELECT xmin FROM outbox_messages UNION ALL SELECT xmin FROM inbox_messages) AS rows",
    )
    .fetch_all(&f.db.pool)
    .await
    .unwrap();
    assert_eq!(writers, [2, 1], "both transitions, their commands and inbox rows were written by one transaction");
    let history: Vec<(String, Option<String>, Vec<String>)> =
        sqlx::query_as("SELECT input, from_status, commands FROM saga_transitions ORDER BY id")
            .fetch_all(&f.db.pool)
            .await
            .unwrap();
    let expected = [
        ("OrderPlaced".to_owned(), None, vec!["ReserveInventory".to_owned()]),
        (
            "InventoryReserved".to_owned(),
            Some("running".to_owned()),
            vec!["AuthorizePayment".to_owned(), "CommitInventory".to_owned()],
        ),
    ];
    assert_eq!(history, expected, "the history in the order the batch applied its messages, each with its commands");
    let step: Option<String> =
        sqlx::query_scalar("SELECT current_step FROM sagas").fetch_one(&f.db.pool).await.unwrap();
    assert_eq!(step.as_deref(), Some("authorize_payment"), "the saga saved as the last message left it");

    // Delivered again in another batch: nothing moves twice.
    f.handler().handle_batch(&batch).await.unwrap();
    assert_eq!(
        f.command_types().await,
        [MessageType::ReserveInventory, MessageType::AuthorizePayment, MessageType::CommitInventory]
    );
}

#[tokio::test]
async fn a_batch_with_a_reply_for_no_saga_keeps_nothing_so_each_can_be_handled_alone() {
    let f = Fixture::new().await;
    let stranger = first_message(
        &Source::service("inventory"),
        OrderId::from_uuid(Uuid::now_v7()),
        checkout_platform::clock::now(),
        InventoryReleased {},
    );
    let batch = [incoming(f.placed.clone()), incoming(stranger.clone())];
    let refused = f.handler().handle_batch(&batch).await;
    assert!(matches!(refused, Err(checkout_kafka::HandlerError::Permanent(_))), "{refused:?}");
    assert!(outbox(&f.db.pool).await.is_empty(), "the placement before it was rolled back too");
    let sagas: i64 = sqlx::query_scalar("SELECT count(*) FROM sagas").fetch_one(&f.db.pool).await.unwrap();
    assert_eq!(sagas, 0);

    f.deliver(&f.placed).await;
    assert!(f.handler().handle(&incoming(stranger)).await.is_err());
    assert_eq!(f.command_types().await, [MessageType::ReserveInventory]);
}
