//! The checkout API over HTTP, against a real database: accepted orders,
//! idempotent retries, every kind of bad input, and the documented shapes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use checkout_domain::OrderId;
use checkout_kafka::Handler;
use checkout_messages::payloads::order::{CancelOrder, CancellationCode, CancellationReason, ConfirmOrder};
use checkout_messages::payloads::saga::{SagaStepName, StepOutcome};
use checkout_messages::{Message, Source};
use checkout_order::OrderHandler;
use checkout_outbox::first_message;
use checkout_testkit::{eventually, incoming, outbox};
use serde_json::{Value, json};
use std::time::Duration;

use checkout_platform::Applied;
use common::{Api, assert_matches_schema, checkout, pricing, step_report};

#[tokio::test]
async fn a_valid_checkout_is_accepted_and_its_event_stored_with_it() {
    let api = Api::new().await;
    let reply = api.post(&checkout(), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_matches_schema(&reply.body, "OrderAccepted");
    let order_id = reply.body["order_id"].as_str().unwrap();
    assert_eq!(reply.headers[header::LOCATION], format!("/orders/{order_id}"));
    assert_eq!(reply.body["status"], "PENDING");

    let events = outbox(&api.db.pool).await;
    let [event] = events.as_slice() else { panic!("one OrderPlaced expected") };
    let Message::OrderPlaced(placed) = &event.payload else { panic!("{event:?}") };
    assert_eq!(event.subject.to_string(), order_id);
    assert_eq!((placed.lines.len(), placed.card_token.as_str()), (2, "tok_visa"));
    assert_eq!(*event.correlation_id.as_uuid(), *event.id.as_uuid(), "the first message names the conversation");

    let order = api.get(&format!("/orders/{order_id}")).await;
    assert_eq!(order.status, StatusCode::OK);
    assert_matches_schema(&order.body, "Order");
    assert_eq!(order.body["lines"][0]["unit_price"], Value::Null, "no price until the inventory quotes one");
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_same_order() {
    let api = Api::new().await;
    let first = api.post(&checkout(), Some("retry-1")).await;
    let second = api.post(&checkout(), Some("retry-1")).await;
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(first.body["order_id"], second.body["order_id"]);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!((api.count("orders").await, api.count("outbox_messages").await), (1, 1));
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_refused() {
    let api = Api::new().await;
    api.post(&checkout(), Some("key-2")).await;
    let mut other = checkout();
    other["items"][0]["quantity"] = json!(3);
    let reply = api.post(&other, Some("key-2")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body["type"].as_str().unwrap().ends_with("/idempotency-key-reused"));
    assert_eq!(api.count("orders").await, 1);
}

#[tokio::test]
async fn concurrent_retries_of_one_key_create_one_order() {
    let api = Api::new().await;
    let body = checkout();
    let attempts = (0..10).map(|_| api.post(&body, Some("burst")));
    let replies = futures::future::join_all(attempts).await;
    let ids: std::collections::HashSet<_> = replies.iter().map(|r| r.body["order_id"].clone()).collect();
    assert!(replies.iter().all(|r| r.status == StatusCode::ACCEPTED));
    assert_eq!(ids.len(), 1);
    assert_eq!((api.count("orders").await, api.count("outbox_messages").await), (1, 1));
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_a_problem_and_writes_nothing() {
    let api = Api::new().await;
    let with = |path: &str, value: Value| {
        let mut body = checkout();
        let pointer = body.pointer_mut(path).unwrap();
        *pointer = value;
        body
    };
    let mut without_email = checkout();
    without_email.as_object_mut().unwrap().remove("email");
    let mut unknown_field = checkout();
    unknown_field["coupon"] = json!("FREE");
    let many: Vec<Value> = (0..51).map(|i| json!({"sku": format!("SKU-{i}"), "quantity": 1})).collect();
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        ("missing field", without_email, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"),
        ("unknown field", unknown_field, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"),
        ("zero quantity", with("/items/0/quantity", json!(0)), StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
        (
            "negative quantity",
            with("/items/0/quantity", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            "absurd quantity",
            with("/items/0/quantity", json!(1_000_000)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        (
            "fractional quantity",
            with("/items/0/quantity", json!(1.5)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        ("too many lines", with("/items", Value::Array(many)), StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
        ("no lines", with("/items", json!([])), StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
        (
            "duplicate skus",
            with("/items/1/sku", json!("MUG-BLACK")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
        ("bad sku", with("/items/0/sku", json!("mug black")), StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
        ("bad email", with("/email", json!("ada-at-example")), StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"),
        (
            "empty card token",
            with("/payment/card_token", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        ),
    ];
    for (case, body, status, problem) in cases {
        let reply = api.post(&body, None).await;
        assert_eq!(reply.status, status, "{case}: {}", reply.body);
        assert_eq!(reply.headers[header::CONTENT_TYPE], "application/problem+json", "{case}");
        assert!(reply.body["type"].as_str().unwrap().ends_with(problem), "{case}: {}", reply.body);
        assert_matches_schema(&reply.body, "Problem");
    }

    let malformed = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"items\": ["))
        .unwrap();
    assert_eq!(api.call(malformed).await.status, StatusCode::BAD_REQUEST);
    let oversized = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(vec![b' '; 100 * 1024]))
        .unwrap();
    assert_eq!(api.call(oversized).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let form = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("a=b"))
        .unwrap();
    assert_eq!(api.call(form).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let long_key = api.post(&checkout(), Some(&"k".repeat(256))).await;
    assert_eq!(long_key.status, StatusCode::BAD_REQUEST);

    assert_eq!((api.count("orders").await, api.count("outbox_messages").await), (0, 0), "nothing was written");
}

#[tokio::test]
async fn every_bad_field_is_named_in_one_answer() {
    let api = Api::new().await;
    let body = json!({"customer_id": "", "email": "x", "items": [{"sku": "ok", "quantity": 0}], "payment": {"card_token": "tok visa"}});
    let reply = api.post(&body, None).await;
    let fields: Vec<&str> =
        reply.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["customer_id", "email", "payment.card_token", "items[0].sku", "items[0].quantity"]);
}

#[tokio::test]
async fn unknown_and_malformed_order_ids_are_problems() {
    let api = Api::new().await;
    let unknown = api.get(&format!("/orders/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_matches_schema(&unknown.body, "Problem");
    assert_eq!(api.get("/orders/not-a-uuid").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_confirmed_order_shows_its_prices_total_and_timeline() {
    let api = Api::new().await;
    let order = api.place().await;
    let step = step_report(SagaStepName::ReserveInventory, StepOutcome::Succeeded);
    api.deliver(order, step).await;
    api.deliver(order, ConfirmOrder { pricing: pricing() }).await;
    api.deliver(order, ConfirmOrder { pricing: pricing() }).await;

    let view = api.get(&format!("/orders/{order}")).await.body;
    assert_matches_schema(&view, "Order");
    assert_eq!(view["status"], "CONFIRMED");
    assert_eq!(view["total"], json!({"amount_minor": 4499, "currency": "EUR"}));
    assert_eq!(view["lines"][0]["unit_price"], json!({"amount_minor": 1250, "currency": "EUR"}));
    assert_eq!(view["timeline"][0]["step"], "reserve_inventory");
    let replies: Vec<Message> = outbox(&api.db.pool).await.into_iter().map(|e| e.payload).collect();
    assert!(matches!(replies[1..], [Message::OrderConfirmed(_), Message::OrderConfirmed(_)]));
}

#[tokio::test]
async fn a_cancelled_order_shows_why_and_cannot_be_confirmed() {
    let api = Api::new().await;
    let order = api.place().await;
    let reason = CancellationReason { code: CancellationCode::PaymentDeclined, detail: "insufficient funds".into() };
    api.deliver(order, CancelOrder { reason, pricing: Some(pricing()) }).await;

    let view = api.get(&format!("/orders/{order}")).await.body;
    assert_matches_schema(&view, "Order");
    assert_eq!(view["status"], "CANCELLED");
    assert_eq!(view["cancellation"], json!({"code": "payment_declined", "detail": "insufficient funds"}));

    let confirm = first_message(
        &Source::service("orchestrator"),
        order,
        checkout_platform::clock::now(),
        ConfirmOrder { pricing: pricing() },
    );
    let error = Applied(OrderHandler::new(api.db.pool.clone())).handle(&incoming(confirm)).await.unwrap_err();
    assert!(matches!(error, checkout_kafka::HandlerError::Permanent(_)), "{error}");
}

fn waiting_get(path: &str, seconds: u64) -> Request<Body> {
    Request::get(path).header("prefer", format!("wait={seconds}")).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_waiting_read_is_answered_when_the_order_is_confirmed_not_when_the_wait_ends() {
    let api = std::sync::Arc::new(Api::new().await);
    let order = api.place().await;

    let waiting = tokio::spawn({
        let api = std::sync::Arc::clone(&api);
        async move { api.call(waiting_get(&format!("/orders/{order}"), 20)).await }
    });
    eventually(Duration::from_secs(10), "the read to wait on the order", || {
        let watched = api.outcomes.watched();
        async move { (watched == 1).then_some(()) }
    })
    .await;
    api.deliver(order, ConfirmOrder { pricing: pricing() }).await;

    // Had it waited the full 20 s instead of being woken, it would still be pending.
    let reply = tokio::time::timeout(Duration::from_secs(15), waiting).await.unwrap().unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "CONFIRMED", "{:#}", reply.body);
    assert_eq!(reply.headers["preference-applied"], "wait=20");
    assert_eq!(reply.headers[header::VARY], "prefer");
    assert_eq!(api.outcomes.watched(), 0, "the watch ends with the request");
}

#[tokio::test]
async fn a_waiting_read_of_an_order_that_stays_pending_answers_pending_after_the_wait() {
    let api = Api::new().await;
    let accepted = api.post(&checkout(), None).await;
    let order = accepted.body["order_id"].as_str().unwrap();

    let started = std::time::Instant::now();
    let reply = api.call(waiting_get(&format!("/orders/{order}"), 1)).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "answered before the wait ran out");
    assert_eq!((reply.status, reply.body["status"].as_str()), (StatusCode::OK, Some("PENDING")));
    assert_eq!(reply.headers["preference-applied"], "wait=1");

    let unknown = api.call(waiting_get(&format!("/orders/{}", OrderId::from_uuid(uuid::Uuid::now_v7())), 5)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "an unknown order is not waited on");
    assert_eq!(api.outcomes.watched(), 0);

    let reason = CancellationReason { code: CancellationCode::PaymentDeclined, detail: "declined".into() };
    api.deliver(order.parse().unwrap(), CancelOrder { reason, pricing: Some(pricing()) }).await;
    let started = std::time::Instant::now();
    let settled = api.call(waiting_get(&format!("/orders/{order}"), 20)).await;
    assert_eq!(settled.body["status"], "CANCELLED");
    assert!(started.elapsed() < Duration::from_secs(20), "a settled order is answered at once");
}

#[tokio::test]
async fn the_openapi_document_is_served_and_describes_the_routes() {
    let api = Api::new().await;
    let reply = api.get("/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["openapi"], "3.1.0");
    for path in [
        "/orders",
        "/orders/{order_id}",
        "/orders/{order_id}/events",
        "/orders/{order_id}/cancel",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(reply.body["paths"].get(path).is_some(), "{path} undocumented");
    }
    let get_order = &reply.body["paths"]["/orders/{order_id}"]["get"];
    let parameters = get_order["parameters"].as_array().unwrap();
    assert!(parameters.iter().any(|p| p["name"] == "Prefer" && p["in"] == "header"), "Prefer: wait undocumented");
    assert!(parameters.iter().any(|p| p["name"] == "as_of" && p["in"] == "query"), "as_of undocumented");
    let list = &reply.body["paths"]["/orders"]["get"];
    for name in ["customer_id", "status", "placed_after", "limit", "cursor"] {
        assert!(list["parameters"].as_array().unwrap().iter().any(|p| p["name"] == name), "{name} undocumented");
    }
    for header in ["Read-Model-Lag-Records", "Read-Model-Consistent-As-Of"] {
        assert!(list["responses"]["200"]["headers"].get(header).is_some(), "{header} undocumented");
    }
    assert!(get_order["responses"]["200"]["headers"].get("Preference-Applied").is_some());
}

#[tokio::test]
async fn the_history_and_a_past_state_answer_in_their_documented_shapes() {
    let api = Api::new().await;
    let order = api.place().await;
    api.deliver(order, ConfirmOrder { pricing: pricing() }).await;

    let history = api.get(&format!("/orders/{order}/events")).await;
    assert_eq!(history.status, StatusCode::OK);
    assert_matches_schema(&history.body, "OrderEvents");
    let events = history.body["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["OrderPlaced", "OrderPriced", "OrderConfirmed"], "{:#}", history.body);
    let placed_at = events[0]["at"].as_str().unwrap();
    let then = api.get(&format!("/orders/{order}?as_of={}", placed_at.replace('+', "%2B"))).await;
    assert_eq!(then.status, StatusCode::OK);
    assert_matches_schema(&then.body, "Order");
    assert_eq!(then.body["status"], "PENDING", "as it was right after being placed");
    let placed = time::OffsetDateTime::parse(placed_at, &time::format_description::well_known::Rfc3339).unwrap();
    let before = (placed - Duration::from_millis(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let earlier = api.get(&format!("/orders/{order}?as_of={}", before.replace('+', "%2B"))).await;
    assert_eq!(earlier.status, StatusCode::NOT_FOUND, "it did not exist yet");
    assert_matches_schema(&earlier.body, "Problem");
    let bad = api.get(&format!("/orders/{order}?as_of=noon")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_matches_schema(&bad.body, "Problem");
    let unknown = api.get(&format!("/orders/{}/events", uuid::Uuid::now_v7())).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
