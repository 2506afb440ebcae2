//! A customer cancels while the saga runs: before the reservation, between
//! reservation and authorization, during a payment timeout, and after the
//! order was confirmed. Also the order's history and the read model.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use checkout_domain::OrderId;
use checkout_testkit::eventually;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::checkout::{
    add_product, cancel, get, mail_to, place, stock, unique, wait_until_finished, wait_until_saga_finished,
};
use crate::support::invariants;
use crate::support::stack::Stack;

fn email(label: &str) -> String {
    format!("{}@example.com", unique(label).to_lowercase())
}

/// Waits until the saga waits on `step` alone, attempt `attempt` or later.
async fn wait_for_attempt(stack: &Arc<Stack>, order: OrderId, step: &str, attempt: u64) -> Value {
    eventually(Duration::from_secs(30), &format!("the saga of {order} to wait on {step} #{attempt}"), || {
        let stack = Arc::clone(stack);
        async move {
            let saga = get(&stack, "orchestrator", &format!("/sagas/{order}")).await.body;
            let current = &saga["current_step"];
            let alone = saga["alongside_step"].is_null();
            (alone && current["step"] == step && current["attempt"].as_u64() >= Some(attempt)).then_some(saga)
        }
    })
    .await
}

/// The cancel is accepted while the saga decides, and asking again changes nothing.
async fn request_cancel(stack: &Stack, order: OrderId) {
    let reply = cancel(stack, order, json!({ "reason": "ordered the wrong size" })).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["cancel_request"]["outcome"], "pending", "{}", reply.body);
    let again = cancel(stack, order, Value::Null).await;
    assert!(matches!(again.status, StatusCode::ACCEPTED | StatusCode::OK), "{}: {}", again.status, again.body);
}

/// The order ended cancelled by the customer with nothing held, told once,
/// and a cancel asked afterwards answers the final state.
async fn assert_cancelled_by_customer(stack: &Stack, order: OrderId, customer: &str, sku: &str, on_hand: i32) {
    let view = wait_until_finished(stack, order).await;
    assert_eq!(
        (view["status"].as_str(), view["cancellation"]["code"].as_str()),
        (Some("CANCELLED"), Some("customer_cancelled")),
        "{view:#}"
    );
    assert_eq!(view["cancellation"]["detail"], "ordered the wrong size");
    assert_eq!(view["cancel_request"]["outcome"], "cancelled");
    let saga = wait_until_saga_finished(stack, order).await;
    assert_eq!(saga["status"], "cancelled", "{saga:#}");
    assert!(matches!(saga["payment"].as_str(), Some("none" | "voided")), "money held: {saga:#}");
    eventually(Duration::from_secs(30), "the stock to be back", || async move {
        (stock(stack, sku).await == (on_hand, 0)).then_some(())
    })
    .await;
    let after = cancel(stack, order, Value::Null).await;
    assert_eq!((after.status, after.body["status"].as_str()), (StatusCode::OK, Some("CANCELLED")));
    assert_eq!(mail_to(stack, customer).len(), 1, "one cancellation email");
    invariants::check(stack, &[order], &[(sku, on_hand)]).await;
}

pub async fn a_cancel_before_the_reservation_gives_back_what_the_reservation_took(stack: Arc<Stack>) {
    let lamp = add_product(&stack, "LAMP", 4200, 3).await;
    let customer = email("cancel-early");
    let order = {
        // The inventory is frozen: the reservation is sent but not answered.
        let _paused = stack.service("inventory").pause();
        let order = place(&stack, &customer, &[(&lamp, 1)], "tok_visa").await;
        wait_for_attempt(&stack, order, "reserve_inventory", 1).await;
        request_cancel(&stack, order).await;
        eventually(Duration::from_secs(30), "the saga to compensate", || {
            let stack = Arc::clone(&stack);
            async move {
                let saga = get(&stack, "orchestrator", &format!("/sagas/{order}")).await.body;
                (saga["status"] == "compensating").then_some(())
            }
        })
        .await;
        order
    };
    assert_cancelled_by_customer(&stack, order, &customer, &lamp, 3).await;
}

pub async fn a_cancel_between_reservation_and_authorization_voids_the_authorization(stack: Arc<Stack>) {
    let rug = add_product(&stack, "RUG", 9900, 2).await;
    let customer = email("cancel-mid");
    let order = {
        // The payment service is frozen with the authorization in its queue:
        // it authorizes after the cancel, and the saga voids it.
        let _paused = stack.service("payment").pause();
        let order = place(&stack, &customer, &[(&rug, 1)], "tok_visa").await;
        wait_for_attempt(&stack, order, "authorize_payment", 1).await;
        assert_eq!(stock(&stack, &rug).await, (1, 0), "the stock is committed beside the authorization");
        request_cancel(&stack, order).await;
        order
    };
    assert_cancelled_by_customer(&stack, order, &customer, &rug, 2).await;
    let saga = get(&stack, "orchestrator", &format!("/sagas/{order}")).await.body;
    assert_eq!(saga["payment"], "voided", "the authorization made after the cancel is voided: {saga:#}");
}

pub async fn a_cancel_during_a_payment_timeout_wins_over_the_timeout(stack: Arc<Stack>) {
    let vase = add_product(&stack, "VASE", 3100, 2).await;
    let customer = email("cancel-timeout");
    let order = place(&stack, &customer, &[(&vase, 1)], "tok_timeout").await;
    // The first attempt timed out; the second is waiting.
    wait_for_attempt(&stack, order, "authorize_payment", 2).await;
    request_cancel(&stack, order).await;
    assert_cancelled_by_customer(&stack, order, &customer, &vase, 2).await;
}

pub async fn a_cancel_after_confirmation_is_refused_and_changes_nothing(stack: Arc<Stack>) {
    let bowl = add_product(&stack, "BOWL", 1500, 2).await;
    let customer = email("cancel-late");
    let order = place(&stack, &customer, &[(&bowl, 1)], "tok_visa").await;
    let before = wait_until_finished(&stack, order).await;
    assert_eq!(before["status"], "CONFIRMED");
    let reply = cancel(&stack, order, json!({ "reason": "too late" })).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert!(reply.body["type"].as_str().unwrap().ends_with("/order-confirmed"), "{}", reply.body);
    let after = get(&stack, "order", &format!("/orders/{order}")).await.body;
    assert_eq!((after["status"].as_str(), &after["cancel_request"]), (Some("CONFIRMED"), &Value::Null));
    wait_until_saga_finished(&stack, order).await;
    // Bad requests are problems, not crashes.
    let bad = stack.http.post(format!("{}/orders/{order}/cancel", stack.url("order"))).json(&json!({ "why": 1 }));
    assert_eq!(bad.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    let unknown = OrderId::from_uuid(uuid::Uuid::now_v7());
    assert_eq!(cancel(&stack, unknown, Value::Null).await.status, StatusCode::NOT_FOUND);
    invariants::check(&stack, &[order], &[(&bowl, 2)]).await;
}

pub async fn the_order_history_answers_what_the_order_was_at_each_event(stack: Arc<Stack>) {
    let cup = add_product(&stack, "CUP", 800, 5).await;
    let order = place(&stack, &email("history"), &[(&cup, 2)], "tok_visa").await;
    wait_until_saga_finished(&stack, order).await;
    let reply = get(&stack, "order", &format!("/orders/{order}/events")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let events = reply.body["events"].as_array().unwrap().clone();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"OrderPlaced"));
    assert!(types.contains(&"OrderPriced") && types.contains(&"OrderConfirmed"), "{types:?}");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"].as_u64(), Some(i as u64 + 1), "sequence numbers have no gaps");
        let at = event["at"].as_str().unwrap();
        let past = get(&stack, "order", &format!("/orders/{order}?as_of={}", urlencode(at))).await;
        assert_eq!(past.status, StatusCode::OK, "{}", past.body);
        assert_eq!(past.body["version"], event["seq"], "as_of {at} is the order right after event {}", i + 1);
        let expected = if types[..=i].contains(&"OrderConfirmed") { "CONFIRMED" } else { "PENDING" };
        assert_eq!(past.body["status"], expected, "at {at}");
    }
    // Lineage: one conversation; the customer's request has no causing
    // message, every later change names the message that caused it.
    let correlations: HashSet<&str> = events.iter().filter_map(|e| e["correlation_id"].as_str()).collect();
    assert_eq!(correlations.len(), 1, "every event is of the checkout's one conversation: {events:?}");
    assert_eq!(events[0]["causation_id"], Value::Null, "OrderPlaced comes from the customer's request");
    for event in &events[1..] {
        let cause = event["causation_id"].as_str().unwrap_or_else(|| panic!("no causing message: {event}"));
        assert!(!correlations.contains(cause), "a change is caused by a message, not the conversation: {event}");
    }
    let before = get(&stack, "order", &format!("/orders/{order}?as_of=2000-01-01T00:00:00Z")).await;
    assert_eq!(before.status, StatusCode::NOT_FOUND);
    let bad = get(&stack, "order", &format!("/orders/{order}?as_of=yesterday")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.headers["content-type"], "application/problem+json");
}

pub async fn the_read_model_lists_a_customers_orders_and_says_how_stale_it_is(stack: Arc<Stack>) {
    let pen = add_product(&stack, "PEN", 300, 10).await;
    let customer = unique("reader");
    let mut orders = Vec::new();
    for card in ["tok_visa", "tok_visa", "tok_decline"] {
        let body = crate::support::checkout::checkout_body(&email("reader"), &[(&pen, 1)], card);
        let mut body = body;
        body["customer_id"] = json!(customer);
        let reply = crate::support::checkout::post_order(&stack, &body, None).await;
        orders.push(reply.body["order_id"].as_str().unwrap().to_owned());
    }
    for order in &orders {
        wait_until_finished(&stack, order.parse().unwrap()).await;
    }
    let path = format!("/orders?customer_id={customer}&limit=2");
    let first = eventually(Duration::from_secs(30), "the read model to show the three final orders", || {
        let (stack, path, customer) = (Arc::clone(&stack), path.clone(), customer.clone());
        async move {
            let all = get(&stack, "order", &format!("/orders?customer_id={customer}")).await.body;
            let finished = all["orders"].as_array()?.iter().filter(|o| o["status"] != "PENDING").count();
            (finished == 3).then_some(())?;
            Some(get(&stack, "order", &path).await)
        }
    })
    .await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.headers.contains_key("read-model-lag-records"), "{:?}", first.headers);
    assert!(first.headers.contains_key("read-model-consistent-as-of"), "{:?}", first.headers);
    assert!(first.body["staleness"]["staleness_seconds"].as_f64().is_some(), "{}", first.body);
    let page: Vec<String> = ids(&first.body);
    assert_eq!(page.len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = get(&stack, "order", &format!("/orders?customer_id={customer}&limit=2&cursor={cursor}")).await;
    let mut listed = [page, ids(&rest.body)].concat();
    assert_eq!(rest.body["next_cursor"], Value::Null);
    listed.sort();
    let mut placed = orders.clone();
    placed.sort();
    assert_eq!(listed, placed, "every order once, across pages");
    let cancelled = get(&stack, "order", &format!("/orders?customer_id={customer}&status=CANCELLED")).await;
    assert_eq!(ids(&cancelled.body), [orders[2].clone()]);
    let bad = get(&stack, "order", "/orders?status=LOST").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

fn ids(page: &Value) -> Vec<String> {
    page["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
