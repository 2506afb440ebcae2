//! Faults injected for real while checkouts flow: a consumer-group member
//! killed with SIGKILL and replaced, the broker killed with SIGKILL and
//! started again, the payment service crashing between the gateway's capture
//! and its record, and PostgreSQL (all five databases) stopped for a minute.
//! After each, every order accepted must confirm, with its effects (capture,
//! stock, email) exactly once, and nothing may be dead-lettered.
//!
//! The scenarios run one at a time on one stack: each breaks something that
//! every service shares. The saga's step deadlines are longer than any fault
//! here, so an order may be late but never cancelled by a timeout.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use checkout_domain::OrderId;
use checkout_messages::Topic;
use checkout_payment::gateway::{IdempotencyKey, Operation};
use checkout_testkit::{LocalBroker, LocalPostgres, eventually};
use libtest_mimic::Arguments;
use reqwest::StatusCode;
use support::checkout::{
    add_product, checkout_body, get, mail_to, place, post_order, unique, wait_until_finished, wait_until_saga_finished,
};
use support::harness::Scenario;
use support::invariants;
use support::stack::Stack;

/// Longer than any outage below: lateness, not a timeout, is what a fault may cause.
const PATIENT: [(&str, &str); 4] = [
    ("SAGA_RESERVE_TIMEOUT_MS", "120000"),
    ("SAGA_AUTHORIZE_TIMEOUT_MS", "120000"),
    ("SAGA_AFTER_PIVOT_TIMEOUT_MS", "120000"),
    ("SAGA_COMPENSATION_TIMEOUT_MS", "120000"),
];

/// How long PostgreSQL stays down (`FAULT_DB_OUTAGE_SECS`, default 60).
fn database_outage() -> Duration {
    Duration::from_secs(std::env::var("FAULT_DB_OUTAGE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60))
}

/// The services' consumer session timeout (their default).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Places `count` checkouts of one unit of `sku`, one every `every`, each for
/// a customer of its own; returns the orders and their customers' addresses.
async fn place_steadily(stack: Arc<Stack>, sku: String, count: usize, every: Duration) -> Vec<(OrderId, String)> {
    let mut placed = Vec::with_capacity(count);
    let mut tick = tokio::time::interval(every);
    for _ in 0..count {
        tick.tick().await;
        let email = format!("{}@example.com", unique("fault").to_lowercase());
        placed.push((place(&stack, &email, &[(&sku, 1)], "tok_visa").await, email));
    }
    placed
}

async fn captured_payments(stack: &Stack) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'captured'")
        .fetch_one(stack.db("payment"))
        .await
        .unwrap()
}

/// Waits until `count` payments have been captured.
async fn payments_flowing(stack: &Stack, count: i64) {
    eventually(Duration::from_secs(30), "payments to flow", || async {
        (captured_payments(stack).await >= count).then_some(())
    })
    .await;
}

/// Every order confirmed, its saga completed, charged and emailed exactly
/// once, and the stock conserved.
async fn all_confirmed_once(stack: &Stack, placed: &[(OrderId, String)], sku: &str, initial: i32) -> Instant {
    for (order, _) in placed {
        let view = wait_until_finished(stack, *order).await;
        assert_eq!(view["status"], "CONFIRMED", "order {order}: {view:#}");
        wait_until_saga_finished(stack, *order).await;
    }
    let settled = Instant::now();
    for (order, email) in placed {
        let mails = eventually(Duration::from_secs(30), &format!("the email of {order}"), || async {
            let mails = mail_to(stack, email);
            (!mails.is_empty()).then_some(mails)
        })
        .await;
        assert_eq!(mails.len(), 1, "{email} got {} emails", mails.len());
    }
    let orders: Vec<OrderId> = placed.iter().map(|(order, _)| *order).collect();
    invariants::check(stack, &orders, &[(sku, initial)]).await;
    settled
}

async fn a_killed_group_member_is_replaced_and_its_partitions_are_served_again(stack: Arc<Stack>) {
    let sku = add_product(&stack, "MEMBER", 500, 100).await;
    let placer = tokio::spawn(place_steadily(Arc::clone(&stack), sku.clone(), 40, Duration::from_millis(100)));
    payments_flowing(&stack, 5).await;

    let payment = stack.service("payment");
    payment.kill();
    let killed = Instant::now();
    let before = captured_payments(&stack).await;
    payment.restart();
    eventually(SESSION_TIMEOUT + Duration::from_secs(20), "the new member to capture a payment", || async {
        (captured_payments(&stack).await > before).then_some(())
    })
    .await;
    let resumed_in = killed.elapsed();

    let placed = placer.await.unwrap();
    let settled = all_confirmed_once(&stack, &placed, &sku, 100).await;
    println!(
        "member kill: payments resumed {:.1} s after the SIGKILL (session timeout {} s); all {} orders settled {:.1} s after it",
        resumed_in.as_secs_f64(),
        SESSION_TIMEOUT.as_secs(),
        placed.len(),
        (settled - killed).as_secs_f64()
    );
}

async fn the_broker_killed_mid_stream_loses_nothing_acknowledged_and_everyone_resumes(stack: Arc<Stack>) {
    let sku = add_product(&stack, "BROKER", 700, 100).await;
    let placer = tokio::spawn(place_steadily(Arc::clone(&stack), sku.clone(), 60, Duration::from_millis(100)));
    payments_flowing(&stack, 5).await;

    let killed = Instant::now();
    let restart = tokio::task::spawn_blocking(|| {
        LocalBroker::kill();
        LocalBroker::start()
    });
    // While it is away, readiness says so, for each of the service's
    // consumers as its client notices (each reports every second).
    let readiness =
        eventually(Duration::from_secs(10), "the order service to report the broker unreachable", || async {
            let reply = get(&stack, "order", "/readyz").await;
            let says = |consumer: &str| {
                reply.body["checks"][consumer].as_str().is_some_and(|c| c.contains("broker unreachable"))
            };
            (reply.status == StatusCode::SERVICE_UNAVAILABLE
                && says("consumer:order")
                && says("consumer:order-read-model"))
            .then_some(reply.body)
        })
        .await;
    let restart_took = restart.await.unwrap();
    assert_eq!(readiness["status"], "unavailable", "{readiness:#}");

    let placed = placer.await.unwrap();
    let settled = all_confirmed_once(&stack, &placed, &sku, 100).await;
    println!(
        "broker kill: back in {:.1} s; all {} orders (placed before, during and after) settled {:.1} s after the SIGKILL",
        restart_took.as_secs_f64(),
        placed.len(),
        (settled - killed).as_secs_f64()
    );
}

/// What a client saw while checking out through an outage.
#[derive(Default)]
struct Placed {
    accepted: Vec<(OrderId, String)>,
    /// `503` answers, each with a `Retry-After`.
    unavailable: usize,
}

/// Like [`place_steadily`] until `stop`, but an order the service refuses
/// with `503` (its database is away) is counted, not a failure; any other
/// answer is.
async fn place_through_outage(stack: Arc<Stack>, sku: String, every: Duration, stop: Arc<AtomicBool>) -> Placed {
    let mut placed = Placed::default();
    let mut tick = tokio::time::interval(every);
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let email = format!("{}@example.com", unique("outage").to_lowercase());
        let reply = post_order(&stack, &checkout_body(&email, &[(&sku, 1)], "tok_visa"), None).await;
        match reply.status {
            StatusCode::ACCEPTED => {
                placed.accepted.push((reply.body["order_id"].as_str().unwrap().parse().unwrap(), email));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(reply.headers.contains_key("retry-after"), "a 503 says when to retry: {:?}", reply.headers);
                assert_eq!(reply.body["status"], 503, "{}", reply.body);
                placed.unavailable += 1;
            }
            other => panic!("checkout answered {other} during a database outage: {}", reply.body),
        }
    }
    placed
}

fn dead_letters(stack: &Stack) -> i64 {
    let names = stack.kafka.names();
    Topic::ALL.iter().map(|&topic| stack.kafka.record_count(&names.dead_letter(topic))).sum()
}

async fn a_database_outage_under_load_is_waited_out_and_every_accepted_order_confirms(stack: Arc<Stack>) {
    let sku = add_product(&stack, "OUTAGE", 900, 1000).await;
    let dead_before = dead_letters(&stack);
    let stop = Arc::new(AtomicBool::new(false));
    let placer = tokio::spawn(place_through_outage(
        Arc::clone(&stack),
        sku.clone(),
        Duration::from_millis(200),
        Arc::clone(&stop),
    ));
    payments_flowing(&stack, 10).await;

    let outage = database_outage();
    let stopped = Instant::now();
    tokio::task::spawn_blocking(LocalPostgres::stop).await.unwrap();
    // While it lasts, the order service says so instead of failing.
    let readiness = eventually(Duration::from_secs(10), "the order service to report its database down", || async {
        let reply = get(&stack, "order", "/readyz").await;
        (reply.status == StatusCode::SERVICE_UNAVAILABLE).then_some(reply.body)
    })
    .await;
    assert_ne!(readiness["checks"]["database"], "ok", "{readiness:#}");
    tokio::time::sleep(outage.saturating_sub(stopped.elapsed())).await;
    tokio::task::spawn_blocking(LocalPostgres::start).await.unwrap();
    let restarted = Instant::now();
    // Checkouts go on for a while after it is back.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    let placed = placer.await.unwrap();
    assert!(placed.unavailable > 0, "no checkout met the outage");

    let settled = all_confirmed_once(&stack, &placed.accepted, &sku, 1000).await;
    assert_eq!(dead_letters(&stack), dead_before, "a transient failure is never a dead letter");
    println!(
        "database outage of {:.0} s: {} orders accepted, {} refused with 503 + Retry-After; all confirmed once, the last {:.1} s after PostgreSQL came back",
        (restarted - stopped).as_secs_f64(),
        placed.accepted.len(),
        placed.unavailable,
        (settled - restarted).as_secs_f64()
    );
}

/// While this file exists, the payment service aborts right after the
/// gateway captured, before recording it (`PAYMENT_FAULT_ABORT_AFTER_CAPTURE`).
fn abort_after_capture_marker() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("checkout-faults-{}-abort-after-capture", std::process::id()))
}

async fn a_payment_service_killed_between_capture_and_its_record_captures_once(stack: Arc<Stack>) {
    let sku = add_product(&stack, "CAPTURE", 1200, 10).await;
    let marker = abort_after_capture_marker();
    std::fs::write(&marker, b"armed").unwrap();
    let email = format!("{}@example.com", unique("capture").to_lowercase());
    let order = place(&stack, &email, &[(&sku, 1)], "tok_visa").await;

    let payment = stack.service("payment");
    eventually(Duration::from_secs(30), "the payment service to abort after the capture", || async {
        payment.has_exited().then_some(())
    })
    .await;
    assert!(!marker.exists(), "the injected fault fired");
    payment.restart();
    stack.wait_ready("payment").await;

    let view = wait_until_finished(&stack, order).await;
    assert_eq!(view["status"], "CONFIRMED", "{view:#}");
    wait_until_saga_finished(&stack, order).await;
    let key = IdempotencyKey::new(order, Operation::Capture);
    let calls: i32 = sqlx::query_scalar("SELECT calls FROM test_gateway_calls WHERE idempotency_key = $1")
        .bind(key.as_str())
        .fetch_one(stack.db("payment"))
        .await
        .unwrap();
    assert_eq!(calls, 2, "the redelivered capture asked the gateway again, with the same key");
    let captures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM payment_operations WHERE order_id = $1 AND operation = 'capture' AND outcome = 'captured'",
    )
    .bind(order.as_uuid())
    .fetch_one(stack.db("payment"))
    .await
    .unwrap();
    assert_eq!(captures, 1, "one capture recorded");
    invariants::check(&stack, &[order], &[(&sku, 10)]).await;
    let mails = eventually(Duration::from_secs(30), "the confirmation email", || async {
        let mails = mail_to(&stack, &email);
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    assert_eq!(mails.len(), 1);
    println!("capture crash: the gateway saw the capture's key twice and captured once; the order confirmed");
}

/// Its own stack, with the tests' short step deadlines (authorize: 1.5 s,
/// then 3 s): the orchestrator is killed while sagas wait for their
/// authorizations, stays down past both deadlines while the payment service
/// answers, and must apply those queued answers instead of timing out.
async fn an_orchestrator_down_past_its_deadlines_applies_the_queued_replies_first(_shared: Arc<Stack>) {
    let stack = Stack::start(&[]).await;
    let sku = add_product(&stack, "QUEUED", 800, 100).await;
    let mut orders = Vec::new();
    for _ in 0..10 {
        let email = format!("{}@example.com", unique("queued").to_lowercase());
        orders.push(place(&stack, &email, &[(&sku, 1)], "tok_visa").await);
    }
    // Kill it as soon as the payment service has been asked for every order.
    eventually(Duration::from_secs(30), "every authorization to be requested", || async {
        let asked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM payments").fetch_one(stack.db("payment")).await.unwrap();
        (asked == 10).then_some(())
    })
    .await;
    let orchestrator = stack.service("orchestrator");
    orchestrator.kill();
    let killed = Instant::now();
    eventually(Duration::from_secs(30), "the payment service to answer every order", || async {
        let answered: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE status <> 'authorizing'")
            .fetch_one(stack.db("payment"))
            .await
            .unwrap();
        (answered == 10).then_some(())
    })
    .await;
    // Past both authorization deadlines (1.5 s + 3 s) of every saga.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(killed.elapsed())).await;
    orchestrator.restart();

    for order in &orders {
        let view = wait_until_finished(&stack, *order).await;
        assert_eq!(view["status"], "CONFIRMED", "a queued authorization was timed out instead: {view:#}");
    }
    println!(
        "orchestrator outage of {:.1} s past every deadline: all {} sagas applied their queued replies and confirmed, {:.1} s after the kill",
        6.0,
        orders.len(),
        killed.elapsed().as_secs_f64()
    );
}

/// Its own stack, with reservations held for 5 s: the payment service is
/// killed before an order is placed and stays down 10 s, so the order's
/// authorization and everything after it wait past the reservation's time
/// limit, while a second checkout wants the last unit. The stock, committed
/// beside the authorization, stays the first order's: no saga may end
/// charged without its stock.
async fn a_reservation_cannot_expire_while_its_payment_waits(_shared: Arc<Stack>) {
    const TTL: Duration = Duration::from_secs(5);
    const HELD: Duration = Duration::from_secs(10);
    let mut env: Vec<(&str, String)> = PATIENT.iter().map(|&(k, v)| (k, v.to_owned())).collect();
    env.push(("INVENTORY_RESERVATION_TTL_SECS", TTL.as_secs().to_string()));
    let stack = Stack::start(&env).await;
    let sku = add_product(&stack, "LASTONE", 4200, 1).await;
    let payment = stack.service("payment");
    payment.kill();
    let killed = Instant::now();
    let first =
        place(&stack, &format!("{}@example.com", unique("first").to_lowercase()), &[(&sku, 1)], "tok_visa").await;
    let placed = Instant::now();
    eventually(Duration::from_secs(30), "the first order's stock to be committed while its payment waits", || {
        let stack = &stack;
        async move {
            let saga = get(stack, "orchestrator", &format!("/sagas/{first}")).await.body;
            (saga["inventory"] == "committed" && saga["payment"] == "requested").then_some(())
        }
    })
    .await;
    // Nothing moves the saga while the payment is down, so its entries reach
    // the order's timeline only through the orchestrator's timer.
    eventually(Duration::from_secs(10), "the order's timeline to show the payment waiting", || {
        let stack = &stack;
        async move {
            let view = get(stack, "order", &format!("/orders/{first}")).await.body;
            let shown = |step: &str, outcome: &str| {
                view["timeline"].as_array().is_some_and(|entries| {
                    entries.iter().any(|entry| entry["step"] == step && entry["outcome"] == outcome)
                })
            };
            (shown("authorize_payment", "started") && shown("commit_inventory", "succeeded")).then_some(())
        }
    })
    .await;
    assert!(killed.elapsed() < HELD, "the timeline showed the wait only after the payment came back");
    // The first order's reservation would have run out by now.
    tokio::time::sleep((TTL + Duration::from_secs(1)).saturating_sub(placed.elapsed())).await;
    let second =
        place(&stack, &format!("{}@example.com", unique("second").to_lowercase()), &[(&sku, 1)], "tok_visa").await;
    tokio::time::sleep(HELD.saturating_sub(killed.elapsed())).await;
    payment.restart();
    stack.wait_ready("payment").await;

    let view = wait_until_finished(&stack, first).await;
    assert_eq!(view["status"], "CONFIRMED", "{view:#}");
    let view = wait_until_finished(&stack, second).await;
    assert_eq!(
        (view["status"].as_str(), view["cancellation"]["code"].as_str()),
        (Some("CANCELLED"), Some("out_of_stock")),
        "the last unit was the first order's: {view:#}"
    );
    for order in [first, second] {
        wait_until_saga_finished(&stack, order).await;
    }
    // Confirmed ⇔ captured ⇔ completed, and one unit sold.
    invariants::check(&stack, &[first, second], &[(&sku, 1)]).await;
    println!(
        "reservation TTL {} s, payment down {} s from before the first order: it confirmed with its stock, the second was out of stock",
        TTL.as_secs(),
        HELD.as_secs()
    );
}

fn scenarios() -> Vec<(&'static str, Scenario)> {
    vec![
        ("a_killed_group_member_is_replaced_and_its_partitions_are_served_again", |stack| {
            Box::pin(a_killed_group_member_is_replaced_and_its_partitions_are_served_again(stack))
        }),
        ("the_broker_killed_mid_stream_loses_nothing_acknowledged_and_everyone_resumes", |stack| {
            Box::pin(the_broker_killed_mid_stream_loses_nothing_acknowledged_and_everyone_resumes(stack))
        }),
        ("a_payment_service_killed_between_capture_and_its_record_captures_once", |stack| {
            Box::pin(a_payment_service_killed_between_capture_and_its_record_captures_once(stack))
        }),
        ("an_orchestrator_down_past_its_deadlines_applies_the_queued_replies_first", |stack| {
            Box::pin(an_orchestrator_down_past_its_deadlines_applies_the_queued_replies_first(stack))
        }),
        ("a_reservation_cannot_expire_while_its_payment_waits", |stack| {
            Box::pin(a_reservation_cannot_expire_while_its_payment_waits(stack))
        }),
        ("a_database_outage_under_load_is_waited_out_and_every_accepted_order_confirms", |stack| {
            Box::pin(a_database_outage_under_load_is_waited_out_and_every_accepted_order_confirms(stack))
        }),
    ]
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // Each scenario breaks what every service shares: one at a time.
    args.test_threads = Some(1);
    let mut env: Vec<(&str, String)> = PATIENT.iter().map(|&(k, v)| (k, v.to_owned())).collect();
    env.push(("PAYMENT_FAULT_ABORT_AFTER_CAPTURE", abort_after_capture_marker().display().to_string()));
    support::harness::run(&args, scenarios(), &env, |_| true)
}
