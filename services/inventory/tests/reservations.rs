//! The inventory against a real database: holds, rejections, repeats,
//! releases, commits, expiry, and no overselling under concurrency.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use checkout_domain::{OrderId, OrderLine, OrderLines, Quantity, Sku};
use checkout_inventory::{InventoryHandler, MIGRATOR};
use checkout_kafka::Handler;
use checkout_messages::payloads::inventory::{CommitInventory, RejectionCode, ReleaseInventory, ReserveInventory};
use checkout_messages::{Envelope, Message, Source};
use checkout_outbox::first_message;
use checkout_testkit::{TestDatabase, incoming, outbox};
use sqlx::PgPool;
use uuid::Uuid;

async fn database() -> TestDatabase {
    TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await
}

fn handler(pool: &PgPool) -> InventoryHandler {
    InventoryHandler::new(pool.clone(), Duration::from_secs(900))
}

fn lines(wanted: &[(&str, u32)]) -> OrderLines {
    OrderLines::new(
        wanted
            .iter()
            .map(|(sku, quantity)| OrderLine {
                sku: Sku::parse(*sku).unwrap(),
                quantity: Quantity::new(*quantity).unwrap(),
            })
            .collect(),
    )
    .unwrap()
}

fn command(order: OrderId, payload: impl Into<Message>) -> Envelope {
    first_message(&Source::service("orchestrator"), order, checkout_platform::clock::now(), payload)
}

fn new_order() -> OrderId {
    OrderId::from_uuid(Uuid::now_v7())
}

async fn send(pool: &PgPool, envelope: Envelope) {
    handler(pool).handle(&incoming(envelope)).await.unwrap();
}

async fn stock(pool: &PgPool, sku: &str) -> (i32, i32) {
    sqlx::query_as("SELECT on_hand, reserved FROM products WHERE sku = $1").bind(sku).fetch_one(pool).await.unwrap()
}

async fn replies(pool: &PgPool) -> Vec<Message> {
    outbox(pool).await.into_iter().map(|e| e.payload).collect()
}

#[tokio::test]
async fn every_line_in_stock_is_held_at_the_catalog_price() {
    let db = database().await;
    let order = new_order();
    send(&db.pool, command(order, ReserveInventory { lines: lines(&[("MUG-BLACK", 2), ("TEE-M", 1)]) })).await;

    let replies = replies(&db.pool).await;
    let [Message::InventoryReserved(reserved)] = replies.as_slice() else { panic!("expected a reservation") };
    assert_eq!(reserved.pricing.total().amount_minor(), 2 * 1250 + 1999);
    assert_eq!(stock(&db.pool, "MUG-BLACK").await, (100, 2));
    assert_eq!(stock(&db.pool, "TEE-M").await, (50, 1));
}

#[tokio::test]
async fn an_unknown_sku_holds_nothing_and_names_the_sku() {
    let db = database().await;
    send(&db.pool, command(new_order(), ReserveInventory { lines: lines(&[("MUG-BLACK", 1), ("NO-SUCH-THING", 1)]) }))
        .await;
    let replies = replies(&db.pool).await;
    let [Message::InventoryReservationRejected(rejected)] = replies.as_slice() else { panic!("expected a rejection") };
    assert_eq!((rejected.code, rejected.sku.as_str()), (RejectionCode::UnknownSku, "NO-SUCH-THING"));
    assert_eq!(stock(&db.pool, "MUG-BLACK").await, (100, 0), "no partial reservation");
}

#[tokio::test]
async fn short_stock_holds_nothing_and_says_how_much_is_left() {
    let db = database().await;
    send(&db.pool, command(new_order(), ReserveInventory { lines: lines(&[("TEE-S", 1), ("POSTER-A2", 11)]) })).await;
    let replies = replies(&db.pool).await;
    let [Message::InventoryReservationRejected(rejected)] = replies.as_slice() else { panic!("expected a rejection") };
    assert_eq!(rejected.code, RejectionCode::OutOfStock);
    assert_eq!(rejected.detail, "POSTER-A2: 11 requested, 10 available");
    assert_eq!(stock(&db.pool, "TEE-S").await, (50, 0));
}

#[tokio::test]
async fn a_repeated_request_is_answered_the_same_and_holds_nothing_more() {
    let db = database().await;
    let order = new_order();
    send(&db.pool, command(order, ReserveInventory { lines: lines(&[("HOODIE-M", 3)]) })).await;
    send(&db.pool, command(order, ReserveInventory { lines: lines(&[("HOODIE-M", 3)]) })).await;
    let replies = replies(&db.pool).await;
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0], replies[1], "same prices and expiry");
    assert_eq!(stock(&db.pool, "HOODIE-M").await, (20, 3));
}

#[tokio::test]
async fn the_same_message_twice_is_handled_once() {
    let db = database().await;
    let message = command(new_order(), ReserveInventory { lines: lines(&[("HOODIE-M", 1)]) });
    send(&db.pool, message.clone()).await;
    send(&db.pool, message).await;
    assert_eq!(replies(&db.pool).await.len(), 1);
    assert_eq!(stock(&db.pool, "HOODIE-M").await, (20, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_racing_its_original_is_handled_once() {
    let db = database().await;
    for _ in 0..5 {
        let message = command(new_order(), ReserveInventory { lines: lines(&[("HOODIE-M", 1)]) });
        // The claim is in the first statement of each: the later waits on
        // the earlier's inbox row, finds it claimed and changes nothing.
        tokio::join!(send(&db.pool, message.clone()), send(&db.pool, message));
    }
    assert_eq!(replies(&db.pool).await.len(), 5);
    assert_eq!(stock(&db.pool, "HOODIE-M").await, (20, 5));
}

#[tokio::test]
async fn releasing_gives_the_stock_back_and_is_idempotent() {
    let db = database().await;
    let order = new_order();
    send(&db.pool, command(order, ReserveInventory { lines: lines(&[("STICKER-PACK", 5)]) })).await;
    send(&db.pool, command(order, ReleaseInventory {})).await;
    send(&db.pool, command(order, ReleaseInventory {})).await;
    assert_eq!(stock(&db.pool, "STICKER-PACK").await, (500, 0));
    let replies = replies(&db.pool).await;
    assert!(matches!(replies[1..], [Message::InventoryReleased(_), Message::InventoryReleased(_)]));
}

#[tokio::test]
async fn a_release_before_any_reservation_refuses_a_late_one() {
    let db = database().await;
    let order = new_order();
    send(&db.pool, command(order, ReleaseInventory {})).await;
    send(&db.pool, command(order, ReserveInventory { lines: lines(&[("MUG-WHITE", 1)]) })).await;
    assert!(matches!(replies(&db.pool).await[1], Message::InventoryReservationRejected(_)));
    assert_eq!(stock(&db.pool, "MUG-WHITE").await, (100, 0));
}

#[tokio::test]
async fn committing_takes_the_stock_out_of_the_warehouse() {
    let db = database().await;
    let order = new_order();
    send(&db.pool, command(order, ReserveInventory { lines: lines(&[("TEE-L", 4)]) })).await;
    send(&db.pool, command(order, CommitInventory {})).await;
    send(&db.pool, command(order, CommitInventory {})).await;
    assert_eq!(stock(&db.pool, "TEE-L").await, (46, 0));
    assert!(matches!(replies(&db.pool).await[1..], [Message::InventoryCommitted(_), Message::InventoryCommitted(_)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_redelivered_while_its_original_runs_moves_the_stock_once() {
    let db = database().await;
    for _ in 0..5 {
        let order = new_order();
        send(&db.pool, command(order, ReserveInventory { lines: lines(&[("TEE-L", 2)]) })).await;
        let commit = command(order, CommitInventory {});
        // Each commits in one statement of its own: the later waits on the
        // earlier's inbox row, finds it claimed and writes nothing.
        tokio::join!(send(&db.pool, commit.clone()), send(&db.pool, commit));
    }
    assert_eq!(stock(&db.pool, "TEE-L").await, (40, 0));
    let committed = replies(&db.pool).await.iter().filter(|m| matches!(m, Message::InventoryCommitted(_))).count();
    assert_eq!(committed, 5, "one reply per commit");
}

#[tokio::test]
async fn committed_stock_that_is_released_goes_back_on_hand_once() {
    let db = database().await;
    let order = new_order();
    send(&db.pool, command(order, ReserveInventory { lines: lines(&[("TEE-L", 3)]) })).await;
    send(&db.pool, command(order, CommitInventory {})).await;
    assert_eq!(stock(&db.pool, "TEE-L").await, (47, 0));
    // The saga compensates before its pivot: the sale is undone, and a repeat changes nothing.
    send(&db.pool, command(order, ReleaseInventory {})).await;
    send(&db.pool, command(order, ReleaseInventory {})).await;
    assert_eq!(stock(&db.pool, "TEE-L").await, (50, 0));
    send(&db.pool, command(order, CommitInventory {})).await;
    assert_eq!(stock(&db.pool, "TEE-L").await, (50, 0), "released stock is not committed again");
    assert!(matches!(
        replies(&db.pool).await[1..],
        [
            Message::InventoryCommitted(_),
            Message::InventoryReleased(_),
            Message::InventoryReleased(_),
            Message::InventoryCommitRejected(_)
        ]
    ));
}

#[tokio::test]
async fn an_expired_hold_is_released_and_reported() {
    let db = database().await;
    let order = new_order();
    let expiring = InventoryHandler::new(db.pool.clone(), Duration::from_secs(1));
    let reserve = command(order, ReserveInventory { lines: lines(&[("LIMITED-PRINT", 2)]) });
    expiring.handle(&incoming(reserve.clone())).await.unwrap();
    assert_eq!(stock(&db.pool, "LIMITED-PRINT").await, (10, 2));
    sqlx::query("UPDATE reservations SET expires_at = now() - interval '1 second'").execute(&db.pool).await.unwrap();

    let sweeper = checkout_inventory::Sweeper::new(db.pool.clone(), Duration::from_secs(1));
    assert_eq!(sweeper.sweep_once(time::OffsetDateTime::now_utc()).await.unwrap(), 1);
    assert_eq!(sweeper.sweep_once(time::OffsetDateTime::now_utc()).await.unwrap(), 0, "each hold expires once");
    assert_eq!(stock(&db.pool, "LIMITED-PRINT").await, (10, 0));
    let expired = outbox(&db.pool).await.pop().unwrap();
    assert!(matches!(expired.payload, Message::InventoryReservationExpired(_)));
    assert_eq!((expired.correlation_id, expired.causation_id), (reserve.correlation_id, reserve.id), "lineage is kept");

    // The stock is still there, so a late commit can still take it.
    send(&db.pool, command(order, CommitInventory {})).await;
    assert_eq!(stock(&db.pool, "LIMITED-PRINT").await, (8, 0));
}

#[tokio::test]
async fn a_reservation_that_cannot_be_released_is_quarantined_and_the_sweep_goes_on() {
    let db = database().await;
    let (broken, fine) = (new_order(), new_order());
    send(&db.pool, command(broken, ReserveInventory { lines: lines(&[("TEE-L", 1)]) })).await;
    send(&db.pool, command(fine, ReserveInventory { lines: lines(&[("LIMITED-PRINT", 2)]) })).await;
    // The stock no longer shows the broken order's hold: releasing it would go below zero.
    sqlx::query("UPDATE products SET reserved = 0 WHERE sku = 'TEE-L'").execute(&db.pool).await.unwrap();
    sqlx::query("UPDATE reservations SET expires_at = now() - interval '1 second'").execute(&db.pool).await.unwrap();

    let sweeper = checkout_inventory::Sweeper::new(db.pool.clone(), Duration::from_secs(1));
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(sweeper.sweep_once(now).await.unwrap(), 2, "one released, one set aside, in one pass");
    assert_eq!(stock(&db.pool, "LIMITED-PRINT").await, (10, 0));
    let (status, reason): (String, Option<String>) =
        sqlx::query_as("SELECT status, quarantine_reason FROM reservations WHERE order_id = $1")
            .bind(broken.as_uuid())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "held", "nothing of the failed release was written");
    assert!(reason.is_some());
    assert_eq!(sweeper.sweep_once(now).await.unwrap(), 0, "and it is not swept again");
}

#[tokio::test]
async fn a_commit_after_expiry_is_rejected_when_the_stock_is_gone() {
    let db = database().await;
    let (late, early) = (new_order(), new_order());
    send(&db.pool, command(late, ReserveInventory { lines: lines(&[("POSTER-A2", 10)]) })).await;
    sqlx::query("UPDATE reservations SET expires_at = now() - interval '1 second'").execute(&db.pool).await.unwrap();
    checkout_inventory::Sweeper::new(db.pool.clone(), Duration::from_secs(1))
        .sweep_once(time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    send(&db.pool, command(early, ReserveInventory { lines: lines(&[("POSTER-A2", 10)]) })).await;
    send(&db.pool, command(late, CommitInventory {})).await;
    assert!(matches!(replies(&db.pool).await.last(), Some(Message::InventoryCommitRejected(_))));
    assert_eq!(stock(&db.pool, "POSTER-A2").await, (10, 10), "the other order keeps its hold");
}

#[tokio::test]
async fn concurrent_orders_never_oversell() {
    let db = database().await;
    let orders: Vec<_> = (0..50).map(|_| new_order()).collect();
    let attempts = orders.iter().map(|&order| {
        let pool = db.pool.clone();
        async move { send(&pool, command(order, ReserveInventory { lines: lines(&[("POSTER-A2", 1)]) })).await }
    });
    futures::future::join_all(attempts).await;

    let replies = replies(&db.pool).await;
    let held = replies.iter().filter(|m| matches!(m, Message::InventoryReserved(_))).count();
    let rejected = replies.iter().filter(|m| matches!(m, Message::InventoryReservationRejected(_))).count();
    assert_eq!((held, rejected), (10, 40));
    assert_eq!(stock(&db.pool, "POSTER-A2").await, (10, 10));
}
