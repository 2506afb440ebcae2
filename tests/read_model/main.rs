//! The read model rebuilt by replay equals the live one, repairs a damaged
//! one, and the live projection carries on after the swap. Its own stack:
//! the comparison needs the topics quiet.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use checkout_domain::OrderId;
use checkout_kafka::Watermarks;
use checkout_testkit::eventually;
use serde_json::Value;

use support::checkout::{add_product, get, place, wait_until_finished, wait_until_saga_finished};
use support::stack::{Stack, binary};

/// Every row of the live read model, as JSON, by order id.
async fn rows(stack: &Stack) -> Vec<Value> {
    sqlx::query_scalar("SELECT to_jsonb(s) FROM order_summaries s ORDER BY order_id")
        .fetch_all(stack.db("order"))
        .await
        .unwrap()
}

/// Runs `order rebuild-read-model` configured like the stack's order service.
fn rebuild(stack: &Stack, check: bool) -> (i32, Value) {
    let mut command = Command::new(binary("order"));
    command
        .arg("rebuild-read-model")
        .env_clear()
        .env("DATABASE_URL", &stack.databases["order"].url)
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.kafka.settings.bootstrap_servers)
        .env("KAFKA_TOPIC_PREFIX", &stack.kafka.settings.topic_prefix);
    if check {
        command.arg("--check");
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("no report ({e}): {stderr}"));
    (output.status.code().unwrap_or(-1), report)
}

/// Waits until the read model reflects every event the services have
/// written. A staleness check's zero lag is not enough: the last event may
/// still sit in a service's outbox (the saga is finished before its final
/// `SagaStepRecorded` is relayed), and the lag is only as new as the
/// monitor's last check. So: wait for the writers' outboxes to be
/// published, ask the broker where the read topics end then, and wait for
/// the projection's stored positions to reach those ends.
async fn caught_up(stack: &Stack, orders: usize) {
    for writer in ["order", "orchestrator"] {
        eventually(Duration::from_secs(30), "the outbox to be published", || async move {
            let unpublished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM outbox_messages WHERE published_at IS NULL AND quarantined_at IS NULL",
            )
            .fetch_one(stack.db(writer))
            .await
            .ok()?;
            (unpublished == 0).then_some(())
        })
        .await;
    }
    let names = stack.kafka.names();
    let topics: Vec<String> = checkout_order::read_model::TOPICS.iter().map(|t| names.physical(*t)).collect();
    let ends = Watermarks::new(&stack.kafka.settings).unwrap().ends(&topics).await.unwrap();
    let ends = &ends;
    eventually(Duration::from_secs(30), "the read model to reach the topics' ends", || async move {
        let positions: Vec<(String, i32, i64)> =
            sqlx::query_as("SELECT topic, partition, next_offset FROM read_model_positions")
                .fetch_all(stack.db("order"))
                .await
                .ok()?;
        let behind: Vec<_> = ends
            .iter()
            .filter(|((topic, partition), end)| {
                let next = positions.iter().find(|(t, p, _)| t == topic && p == partition).map_or(0, |row| row.2);
                next < **end
            })
            .collect();
        if !behind.is_empty() {
            // Printed only when the test fails: what it was waiting for.
            eprintln!("read model behind the topics' ends on {behind:?}");
        }
        behind.is_empty().then_some(())
    })
    .await;
    let reply = get(stack, "order", "/orders?limit=100").await;
    let finished = reply.body["orders"].as_array().unwrap().iter().filter(|o| o["status"] != "PENDING").count();
    assert_eq!(
        finished,
        orders,
        "every order is final in the read model: {}\nrows: {:?}",
        reply.body,
        rows(stack).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_read_model_equals_the_live_one_and_repairs_a_damaged_one() {
    let stack = Stack::start(&[]).await;
    let mug = add_product(&stack, "MUG", 1250, 3).await;
    let mut orders: Vec<OrderId> = Vec::new();
    for (n, card) in ["tok_visa", "tok_decline", "tok_visa", "tok_visa", "tok_visa"].into_iter().enumerate() {
        orders.push(place(&stack, &format!("replay{n}@example.com"), &[(&mug, 1)], card).await);
    }
    for order in &orders {
        wait_until_finished(&stack, *order).await;
        wait_until_saga_finished(&stack, *order).await;
    }
    caught_up(&stack, orders.len()).await;
    let live = rows(&stack).await;
    assert_eq!(live.len(), orders.len());
    let statuses: Vec<&str> = live.iter().map(|row| row["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"CONFIRMED") && statuses.contains(&"CANCELLED"), "{statuses:?}");

    let (code, report) = rebuild(&stack, true);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        (report["live_caught_up"].as_bool(), report["differences"].as_u64()),
        (Some(true), Some(0)),
        "{report:#}"
    );
    assert_eq!(report["orders"].as_u64(), Some(orders.len() as u64));
    assert_eq!(rows(&stack).await, live, "--check leaves the live read model as it was");

    // Damage the live rows (a projection bug, a bad hand edit): a rebuild repairs them.
    sqlx::query("UPDATE order_summaries SET status = 'PENDING', total_minor = NULL WHERE order_id = $1")
        .bind(orders[0].as_uuid())
        .execute(stack.db("order"))
        .await
        .unwrap();
    sqlx::query("DELETE FROM order_summaries WHERE order_id = $1")
        .bind(orders[1].as_uuid())
        .execute(stack.db("order"))
        .await
        .unwrap();
    let (code, report) = rebuild(&stack, true);
    assert_eq!((code, report["differences"].as_u64()), (2, Some(2)), "--check finds both: {report:#}");
    let (code, report) = rebuild(&stack, false);
    assert_eq!((code, report["swapped"].as_bool()), (0, Some(true)), "{report:#}");
    assert_eq!(rows(&stack).await, live, "the rebuilt read model is the one the live projection had built");

    // The live projection goes on writing into the swapped-in tables.
    let more = place(&stack, "replay-after@example.com", &[(&mug, 1)], "tok_visa").await;
    wait_until_finished(&stack, more).await;
    wait_until_saga_finished(&stack, more).await;
    caught_up(&stack, orders.len() + 1).await;
    let (code, report) = rebuild(&stack, true);
    assert_eq!((code, report["differences"].as_u64()), (0, Some(0)), "{report:#}");
}
