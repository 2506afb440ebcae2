//! The checkout API over HTTP, against a real database: accepted orders,
//! idempotent retries, every kind of bad input, and the documented shapes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use checkout_domain::{Currency, Money, OrderId, PricedLine, Pricing, Quantity, Sku};
use checkout_kafka::{Handler, Incoming, RecordPosition};
use checkout_messages::payloads::order::{CancelOrder, CancellationCode, CancellationReason, ConfirmOrder};
use checkout_messages::payloads::saga::{SagaStepName, SagaStepRecorded, StepOutcome};
use checkout_messages::{Message, Source};
use checkout_order::domain::Summary;
use checkout_order::read_model::{Projection, Staleness};
use checkout_order::{MIGRATOR, OrderHandler, http};
use checkout_outbox::first_message;
use checkout_platform::http::{Readiness, service_router};
use checkout_platform::metrics::Collectors;
use checkout_testkit::{TestDatabase, eventually, incoming, outbox};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};
use tower::ServiceExt;

struct Api {
    db: TestDatabase,
    outcomes: http::Outcomes,
    _listening: DropGuard,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Api {
    async fn new() -> Self {
        let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
        let (outcomes, stop) = (http::Outcomes::default(), CancellationToken::new());
        tokio::spawn(outcomes.clone().listen(db.pool.clone(), stop.clone()));
        Self { db, outcomes, _listening: stop.drop_guard() }
    }

    fn router(&self) -> Router {
        let routes = http::routes(self.db.pool.clone(), Staleness::default(), self.outcomes.clone());
        service_router(routes, Readiness::new(), Collectors::new())
    }

    async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.router().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    async fn post(&self, body: &Value, key: Option<&str>) -> Reply {
        let mut request = Request::post("/orders").header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.call(request.body(Body::from(body.to_string())).unwrap()).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Request::get(path).body(Body::empty()).unwrap()).await
    }

    async fn count(&self, table: &str) -> i64 {
        // Table names come from the tests themselves.
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        sqlx::query_scalar(sql).fetch_one(&self.db.pool).await.unwrap()
    }

    async fn deliver(&self, order: OrderId, payload: impl Into<Message>) {
        let envelope = first_message(&Source::service("orchestrator"), order, payload);
        OrderHandler::new(self.db.pool.clone()).handle(&incoming(envelope)).await.unwrap();
    }
}

fn checkout() -> Value {
    json!({
        "customer_id": "cust-42",
        "email": "ada@example.com",
        "items": [{"sku": "MUG-BLACK", "quantity": 2}, {"sku": "TEE-M", "quantity": 1}],
        "payment": {"card_token": "tok_visa"}
    })
}

/// Validates `value` against a schema of the committed OpenAPI document.
fn assert_matches_schema(value: &Value, schema: &str) {
    let document: Value = serde_json::from_str(http::OPENAPI).unwrap();
    let root = json!({ "$ref": format!("#/components/schemas/{schema}"), "components": document["components"] });
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{schema}: {errors:?}\n{value:#}");
}

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

fn pricing() -> Pricing {
    let line = |sku: &str, quantity, unit| PricedLine {
        sku: Sku::parse(sku).unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        unit_price: Money::new(unit, Currency::EUR).unwrap(),
    };
    Pricing::new(vec![line("MUG-BLACK", 2, 1250), line("TEE-M", 1, 1999)]).unwrap()
}

#[tokio::test]
async fn a_confirmed_order_shows_its_prices_total_and_timeline() {
    let api = Api::new().await;
    let accepted = api.post(&checkout(), None).await;
    let order: OrderId = accepted.body["order_id"].as_str().unwrap().parse().unwrap();
    let step = SagaStepRecorded {
        earlier: Vec::new(),
        step: SagaStepName::ReserveInventory,
        outcome: StepOutcome::Succeeded,
        attempt: 1,
        detail: None,
    };
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
    let accepted = api.post(&checkout(), None).await;
    let order: OrderId = accepted.body["order_id"].as_str().unwrap().parse().unwrap();
    let reason = CancellationReason { code: CancellationCode::PaymentDeclined, detail: "insufficient funds".into() };
    api.deliver(order, CancelOrder { reason, pricing: Some(pricing()) }).await;

    let view = api.get(&format!("/orders/{order}")).await.body;
    assert_matches_schema(&view, "Order");
    assert_eq!(view["status"], "CANCELLED");
    assert_eq!(view["cancellation"], json!({"code": "payment_declined", "detail": "insufficient funds"}));

    let confirm = first_message(&Source::service("orchestrator"), order, ConfirmOrder { pricing: pricing() });
    let error = OrderHandler::new(api.db.pool.clone()).handle(&incoming(confirm)).await.unwrap_err();
    assert!(matches!(error, checkout_kafka::HandlerError::Permanent(_)), "{error}");
}

fn waiting_get(path: &str, seconds: u64) -> Request<Body> {
    Request::get(path).header("prefer", format!("wait={seconds}")).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_waiting_read_is_answered_when_the_order_is_confirmed_not_when_the_wait_ends() {
    let api = std::sync::Arc::new(Api::new().await);
    let accepted = api.post(&checkout(), None).await;
    let order: OrderId = accepted.body["order_id"].as_str().unwrap().parse().unwrap();

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

/// The events of three orders as the read model receives them, each at a
/// position of its topic (one partition per order, as keyed): the order
/// service's own from its outbox, and the orchestrator's step reports.
/// One is confirmed, one cancelled after the customer asked, one pending.
async fn three_histories(api: &Api) -> (Vec<OrderId>, Vec<(checkout_messages::Envelope, RecordPosition)>) {
    let mut orders = Vec::new();
    for _ in 0..3 {
        let accepted = api.post(&checkout(), None).await;
        orders.push(accepted.body["order_id"].as_str().unwrap().parse::<OrderId>().unwrap());
    }
    let mut reports = Vec::new();
    for order in &orders {
        for (step, outcome) in [
            (SagaStepName::ReserveInventory, StepOutcome::Succeeded),
            (SagaStepName::AuthorizePayment, StepOutcome::Succeeded),
        ] {
            let report = SagaStepRecorded { earlier: Vec::new(), step, outcome, attempt: 1, detail: None };
            let envelope = first_message(&Source::service("orchestrator"), *order, report);
            OrderHandler::new(api.db.pool.clone()).handle(&incoming(envelope.clone())).await.unwrap();
            reports.push(envelope);
        }
    }
    api.deliver(orders[0], ConfirmOrder { pricing: pricing() }).await;
    let cancel = Request::post(format!("/orders/{}/cancel", orders[1]))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "reason": "changed my mind" }).to_string()))
        .unwrap();
    assert_eq!(api.call(cancel).await.status, StatusCode::ACCEPTED);
    let reason = CancellationReason { code: CancellationCode::CustomerCancelled, detail: "changed my mind".into() };
    api.deliver(orders[1], CancelOrder { reason, pricing: Some(pricing()) }).await;

    let published = outbox(&api.db.pool).await.into_iter().filter(|e| Summary::reads(&e.payload));
    let mut offsets: std::collections::HashMap<(String, i32), i64> = std::collections::HashMap::new();
    let mut records = Vec::new();
    for (topic, envelope) in
        published.map(|e| ("order.events", e)).chain(reports.into_iter().map(|e| ("orchestrator.events", e)))
    {
        let partition = i32::try_from(orders.iter().position(|o| *o == envelope.subject).unwrap()).unwrap();
        let offset = offsets.entry((topic.to_owned(), partition)).or_insert(0);
        records.push((envelope, RecordPosition { topic: topic.to_owned(), partition, offset: *offset }));
        *offset += 1;
    }
    (orders, records)
}

/// Projects `batches` into a fresh database; its rows and read positions.
async fn project(batches: &[Vec<&(checkout_messages::Envelope, RecordPosition)>]) -> (Value, Value) {
    let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
    project_into(&db.pool, batches).await;
    let rows =
        sqlx::query_scalar("SELECT COALESCE(jsonb_agg(to_jsonb(s) ORDER BY order_id), '[]') FROM order_summaries s")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let positions = sqlx::query_scalar(
        "SELECT COALESCE(jsonb_agg(to_jsonb(p) ORDER BY topic, partition), '[]') FROM read_model_positions p",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    (rows, positions)
}

async fn project_into(pool: &sqlx::PgPool, batches: &[Vec<&(checkout_messages::Envelope, RecordPosition)>]) {
    let projection = Projection::new(pool.clone());
    for batch in batches {
        let batch: Vec<Incoming> = batch
            .iter()
            .map(|(envelope, position)| Incoming { position: position.clone(), ..incoming(envelope.clone()) })
            .collect();
        projection.handle_batch(&batch).await.unwrap();
    }
}

#[tokio::test]
async fn the_read_model_keeps_the_same_rows_whether_events_come_once_in_order_or_redelivered_and_reordered() {
    let api = Api::new().await;
    let (orders, records) = three_histories(&api).await;
    assert_eq!(records.len(), 3 + 6 + 1 + 1 + 1, "placed ×3, steps ×6, confirmed, cancel requested, cancelled");
    let once_in_order: Vec<Vec<_>> = records.iter().map(|record| vec![record]).collect();
    let (rows, positions) = project(&once_in_order).await;
    let status =
        |n: usize| rows.as_array().unwrap().iter().find(|row| row["order_id"] == orders[n].to_string()).unwrap();
    assert_eq!((status(0)["status"].as_str(), status(0)["total_minor"].as_i64()), (Some("CONFIRMED"), Some(4499)));
    assert_eq!(status(1)["status"], "CANCELLED");
    assert_eq!(status(1)["cancellation_code"], "customer_cancelled");
    assert!(status(1)["cancel_requested_at"].is_string(), "{rows:#}");
    assert_eq!(status(2)["status"], "PENDING");
    for n in 0..3 {
        assert_eq!(status(n)["last_step"]["step"], "authorize_payment", "the latest step report wins: {rows:#}");
    }

    // Redelivered (each twice), reordered (newest first, odd before even),
    // and in batches of other sizes, duplicates within one batch included.
    let reversed_twice: Vec<_> = records.iter().rev().flat_map(|record| [record, record]).collect();
    let odd_then_even: Vec<_> = records.iter().skip(1).step_by(2).chain(records.iter().step_by(2)).collect();
    let all_twice: Vec<_> = records.iter().chain(records.iter()).collect();
    for (how, batches) in [
        ("reversed, each twice, in threes", reversed_twice.chunks(3).map(<[_]>::to_vec).collect::<Vec<_>>()),
        ("odd before even, in pairs", odd_then_even.chunks(2).map(<[_]>::to_vec).collect()),
        ("everything twice in one batch", vec![all_twice]),
    ] {
        assert_eq!(project(&batches).await, (rows.clone(), positions.clone()), "{how}");
    }

    // The API answers from these rows: filters, `placed_after`, the documented shape.
    project_into(&api.db.pool, &once_in_order).await;
    let listed = api.get("/orders?customer_id=cust-42").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_matches_schema(&listed.body, "OrderList");
    let placed: Vec<&str> =
        listed.body["orders"].as_array().unwrap().iter().map(|o| o["placed_at"].as_str().unwrap()).collect();
    assert_eq!(placed.len(), 3, "{:#}", listed.body);
    let newer = api.get(&format!("/orders?customer_id=cust-42&placed_after={}", placed[1].replace('+', "%2B"))).await;
    let ids: Vec<&str> =
        newer.body["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [listed.body["orders"][0]["order_id"].as_str().unwrap()],
        "only what was placed after: {:#}",
        newer.body
    );
    let confirmed = api.get("/orders?status=confirmed").await.body;
    assert_eq!(confirmed["orders"].as_array().map(Vec::len), Some(1), "{confirmed:#}");
    let bad = api.get("/orders?placed_after=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_matches_schema(&bad.body, "Problem");
}

#[tokio::test]
async fn the_history_and_a_past_state_answer_in_their_documented_shapes() {
    let api = Api::new().await;
    let accepted = api.post(&checkout(), None).await;
    let order: OrderId = accepted.body["order_id"].as_str().unwrap().parse().unwrap();
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
