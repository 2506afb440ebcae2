//! One function per scenario; `all` lists them for the harness.

use std::sync::Arc;

use checkout_kafka::OutgoingRecord;
use checkout_messages::Source;
use checkout_messages::payloads::payment::PaymentAuthorized;
use checkout_outbox::first_message;
use checkout_testkit::eventually;
use reqwest::StatusCode;
use serde_json::Value;

use crate::cancel::{
    a_cancel_after_confirmation_is_refused_and_changes_nothing,
    a_cancel_before_the_reservation_gives_back_what_the_reservation_took,
    a_cancel_between_reservation_and_authorization_voids_the_authorization,
    a_cancel_during_a_payment_timeout_wins_over_the_timeout,
    the_order_history_answers_what_the_order_was_at_each_event,
    the_read_model_lists_a_customers_orders_and_says_how_stale_it_is,
};
use crate::metrics::every_service_exports_the_metrics_the_readme_lists;
use crate::support::checkout::{
    add_product, checkout_body, get, mail_to, place, post_order, post_raw, stock, unique, wait_until_finished,
    wait_until_saga_finished,
};
use crate::support::harness::Scenario;
use crate::support::invariants;
use crate::support::stack::{OPERATOR_TOKEN, Stack};

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        pub fn all() -> Vec<(&'static str, Scenario)> {
            vec![$((stringify!($name), |stack| Box::pin($name(stack)) as _),)*]
        }
    };
}

scenarios![
    the_happy_path_confirms_charges_commits_and_emails_once,
    out_of_stock_cancels_without_charging,
    an_unknown_sku_cancels_the_order,
    a_declined_payment_releases_the_stock_and_says_why,
    a_payment_that_never_answers_is_compensated_and_a_late_authorization_voided,
    an_idempotent_retry_creates_one_order,
    fifty_concurrent_checkouts_for_the_last_ten_units_confirm_exactly_ten,
    bad_input_gets_problems_and_starts_no_saga,
    an_operator_aborts_a_stuck_checkout_and_the_order_is_cancelled_saying_so,
    an_operator_retries_a_waiting_step_and_is_refused_what_does_not_apply,
    an_operator_sets_stock_and_the_change_is_recorded,
    the_load_generator_follows_every_checkout_to_its_end,
    a_cancel_before_the_reservation_gives_back_what_the_reservation_took,
    a_cancel_between_reservation_and_authorization_voids_the_authorization,
    a_cancel_during_a_payment_timeout_wins_over_the_timeout,
    a_cancel_after_confirmation_is_refused_and_changes_nothing,
    the_order_history_answers_what_the_order_was_at_each_event,
    the_read_model_lists_a_customers_orders_and_says_how_stale_it_is,
    every_service_exports_the_metrics_the_readme_lists,
];

fn email(label: &str) -> String {
    format!("{}@example.com", unique(label).to_lowercase())
}

fn steps(view: &Value) -> Vec<(String, String)> {
    view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_owned(), s["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

async fn the_happy_path_confirms_charges_commits_and_emails_once(stack: Arc<Stack>) {
    let mug = add_product(&stack, "MUG", 1250, 10).await;
    let tee = add_product(&stack, "TEE", 1999, 5).await;
    let customer = email("happy");
    let order = place(&stack, &customer, &[(&mug, 2), (&tee, 1)], "tok_visa").await;

    let view = wait_until_finished(&stack, order).await;
    assert_eq!(view["status"], "CONFIRMED", "{view:#}");
    assert_eq!(view["total"]["amount_minor"], 2 * 1250 + 1999);
    assert_eq!(view["lines"][0]["unit_price"]["amount_minor"], 1250);
    assert!(view["trace_id"].as_str().is_some_and(|id| id.len() == 32), "{view:#}");
    wait_until_saga_finished(&stack, order).await;
    // The timeline reaches the order service on its own topic: wait for its last entry.
    let view = eventually(std::time::Duration::from_secs(30), "the order's timeline to show the email", || {
        let stack = Arc::clone(&stack);
        async move {
            let view = get(&stack, "order", &format!("/orders/{order}")).await.body;
            steps(&view).contains(&("notify_customer".to_owned(), "succeeded".to_owned())).then_some(view)
        }
    })
    .await;
    let timeline = steps(&view);
    for step in [
        "reserve_inventory",
        "authorize_payment",
        "confirm_order",
        "capture_payment",
        "commit_inventory",
        "notify_customer",
    ] {
        assert!(timeline.contains(&(step.to_owned(), "succeeded".to_owned())), "{step} missing from {timeline:?}");
    }
    assert_eq!(stock(&stack, &mug).await, (8, 0));
    assert_eq!(stock(&stack, &tee).await, (4, 0));
    let mail = mail_to(&stack, &customer);
    assert_eq!(mail.len(), 1, "exactly one email");
    assert!(mail[0].header("Subject").unwrap().ends_with("is confirmed"));
    invariants::check(&stack, &[order], &[(&mug, 10), (&tee, 5)]).await;
}

async fn out_of_stock_cancels_without_charging(stack: Arc<Stack>) {
    let scarce = add_product(&stack, "SCARCE", 500, 1).await;
    let customer = email("oos");
    let order = place(&stack, &customer, &[(&scarce, 2)], "tok_visa").await;
    let view = wait_until_finished(&stack, order).await;
    assert_eq!(view["status"], "CANCELLED");
    assert_eq!(view["cancellation"]["code"], "out_of_stock");
    assert!(view["cancellation"]["detail"].as_str().unwrap().contains("2 requested, 1 available"));
    wait_until_saga_finished(&stack, order).await;
    assert_eq!(crate::support::checkout::payment_status(&stack, order).await, None, "the card was never touched");
    assert_eq!(mail_to(&stack, &customer).len(), 1);
    invariants::check(&stack, &[order], &[(&scarce, 1)]).await;
}

async fn an_unknown_sku_cancels_the_order(stack: Arc<Stack>) {
    let customer = email("unknown");
    let missing = unique("NOPE");
    let order = place(&stack, &customer, &[(&missing, 1)], "tok_visa").await;
    let view = wait_until_finished(&stack, order).await;
    assert_eq!(
        (view["status"].as_str(), view["cancellation"]["code"].as_str()),
        (Some("CANCELLED"), Some("unknown_sku"))
    );
    wait_until_saga_finished(&stack, order).await;
    invariants::check(&stack, &[order], &[]).await;
}

async fn a_declined_payment_releases_the_stock_and_says_why(stack: Arc<Stack>) {
    let hoodie = add_product(&stack, "HOODIE", 4900, 3).await;
    let customer = email("declined");
    let order = place(&stack, &customer, &[(&hoodie, 2)], "tok_insufficient_funds").await;
    let view = wait_until_finished(&stack, order).await;
    assert_eq!(view["status"], "CANCELLED");
    assert_eq!(view["cancellation"]["code"], "payment_declined");
    assert_eq!(view["total"]["amount_minor"], 9800, "the prices quoted before the decline are kept");
    let saga = wait_until_saga_finished(&stack, order).await;
    assert_eq!(saga["inventory"], "released");
    assert_eq!(stock(&stack, &hoodie).await, (3, 0), "the stock is back");
    let mail = mail_to(&stack, &customer);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].data.contains("Reason: insufficient funds"), "{}", mail[0].data);
    invariants::check(&stack, &[order], &[(&hoodie, 3)]).await;
}

async fn a_payment_that_never_answers_is_compensated_and_a_late_authorization_voided(stack: Arc<Stack>) {
    let poster = add_product(&stack, "POSTER", 2500, 4).await;
    let customer = email("timeout");
    let order = place(&stack, &customer, &[(&poster, 1)], "tok_timeout").await;
    let view = wait_until_finished(&stack, order).await;
    assert_eq!(
        (view["status"].as_str(), view["cancellation"]["code"].as_str()),
        (Some("CANCELLED"), Some("payment_timed_out"))
    );
    let saga = wait_until_saga_finished(&stack, order).await;
    assert_eq!(saga["payment"], "voided", "{saga:#}");
    assert_eq!(stock(&stack, &poster).await, (4, 0));

    // The gateway's answer turns up after all: it must be voided.
    let late = first_message(
        &Source::service("payment"),
        order,
        checkout_platform::clock::now(),
        PaymentAuthorized {
            authorization_id: "auth_late".into(),
            amount: checkout_domain::Money::new(2500, checkout_domain::Currency::EUR).unwrap(),
        },
    );
    let record = OutgoingRecord::for_envelope(&late, &stack.kafka.names()).unwrap();
    stack.kafka.publisher().publish(&record).await.unwrap();
    let saga = eventually(std::time::Duration::from_secs(30), "the late authorization to be voided", || {
        let stack = Arc::clone(&stack);
        async move {
            let saga = get(&stack, "orchestrator", &format!("/sagas/{order}")).await.body;
            let transitions = saga["transitions"].as_array().cloned().unwrap_or_default();
            let voided = transitions
                .iter()
                .any(|t| t["input"] == "PaymentAuthorized" && t["commands"] == serde_json::json!(["VoidPayment"]));
            (voided && saga["payment"] == "voided").then_some(saga)
        }
    })
    .await;
    assert_eq!(saga["status"], "cancelled");
    assert_eq!(mail_to(&stack, &customer).len(), 1, "one cancellation email");
    invariants::check(&stack, &[order], &[(&poster, 4)]).await;
}

async fn an_idempotent_retry_creates_one_order(stack: Arc<Stack>) {
    let sticker = add_product(&stack, "STICKER", 499, 20).await;
    let customer = email("retry");
    let body = checkout_body(&customer, &[(&sticker, 3)], "tok_visa");
    let key = unique("key");
    let first = post_order(&stack, &body, Some(&key)).await;
    let second = post_order(&stack, &body, Some(&key)).await;
    assert_eq!((first.status, second.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first.body["order_id"], second.body["order_id"]);
    let order = first.body["order_id"].as_str().unwrap().parse().unwrap();
    wait_until_finished(&stack, order).await;
    wait_until_saga_finished(&stack, order).await;
    assert_eq!(stock(&stack, &sticker).await, (17, 0), "charged and shipped once");
    assert_eq!(mail_to(&stack, &customer).len(), 1);
    invariants::check(&stack, &[order], &[(&sticker, 20)]).await;
}

async fn fifty_concurrent_checkouts_for_the_last_ten_units_confirm_exactly_ten(stack: Arc<Stack>) {
    let limited = add_product(&stack, "LIMITED", 12000, 10).await;
    let customers: Vec<String> = (0..50).map(|_| email("rush")).collect();
    let items = [(limited.as_str(), 1)];
    let orders =
        futures::future::join_all(customers.iter().map(|customer| place(&stack, customer, &items, "tok_visa"))).await;
    let views = futures::future::join_all(orders.iter().map(|&order| wait_until_finished(&stack, order))).await;
    let confirmed = views.iter().filter(|v| v["status"] == "CONFIRMED").count();
    let sold_out = views.iter().filter(|v| v["cancellation"]["code"] == "out_of_stock").count();
    assert_eq!((confirmed, sold_out), (10, 40));
    futures::future::join_all(orders.iter().map(|&order| wait_until_saga_finished(&stack, order))).await;
    assert_eq!(stock(&stack, &limited).await, (0, 0));
    for customer in &customers {
        assert_eq!(mail_to(&stack, customer).len(), 1, "{customer} got one email");
    }
    invariants::check(&stack, &orders, &[(&limited, 10)]).await;
}

async fn bad_input_gets_problems_and_starts_no_saga(stack: Arc<Stack>) {
    let customer = email("bad");
    let mug = add_product(&stack, "BADMUG", 100, 5).await;
    let mut unknown_field = checkout_body(&customer, &[(&mug, 1)], "tok_visa");
    unknown_field["gift"] = Value::Bool(true);
    let cases = [
        (checkout_body(&customer, &[(&mug, 0)], "tok_visa"), StatusCode::UNPROCESSABLE_ENTITY),
        (checkout_body(&customer, &[(&mug, 100_000)], "tok_visa"), StatusCode::UNPROCESSABLE_ENTITY),
        (checkout_body(&customer, &[(&mug, 1), (&mug, 1)], "tok_visa"), StatusCode::UNPROCESSABLE_ENTITY),
        (checkout_body("not-an-email", &[(&mug, 1)], "tok_visa"), StatusCode::UNPROCESSABLE_ENTITY),
        (unknown_field, StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (body, status) in cases {
        let reply = post_order(&stack, &body, None).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert_eq!(reply.headers["content-type"], "application/problem+json");
    }
    assert_eq!(post_raw(&stack, "application/json", b"{\"items\":".to_vec()).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(post_raw(&stack, "application/json", vec![b' '; 200_000]).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(post_raw(&stack, "text/plain", b"hello".to_vec()).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let unknown = get(&stack, "order", &format!("/orders/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.headers["content-type"], "application/problem+json");

    let placed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM order_events WHERE event_type = 'OrderPlaced' AND data->>'email' = $1",
    )
    .bind(&customer)
    .fetch_one(stack.db("order"))
    .await
    .unwrap();
    assert_eq!(placed, 0, "no order was written");
    assert_eq!(stock(&stack, &mug).await, (5, 0));
}

/// `POST /sagas/{order}/{action}` with `token` (none: no `Authorization`).
async fn operate(
    stack: &Stack,
    order: checkout_domain::OrderId,
    action: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = stack.http.post(format!("{}/sagas/{order}/{action}", stack.url("orchestrator"))).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the saga waits on `step` alone; returns its view.
async fn wait_for_step(stack: &Arc<Stack>, order: checkout_domain::OrderId, step: &str) -> Value {
    eventually(std::time::Duration::from_secs(30), &format!("the saga of {order} to wait on {step}"), || {
        let stack = Arc::clone(stack);
        async move {
            let saga = get(&stack, "orchestrator", &format!("/sagas/{order}")).await.body;
            (saga["current_step"]["step"] == step && saga["alongside_step"].is_null()).then_some(saga)
        }
    })
    .await
}

fn operator_transitions(saga: &Value, input: &str) -> Vec<Value> {
    let transitions = saga["transitions"].as_array().cloned().unwrap_or_default();
    transitions.into_iter().filter(|t| t["input"] == input).collect()
}

async fn an_operator_aborts_a_stuck_checkout_and_the_order_is_cancelled_saying_so(stack: Arc<Stack>) {
    let frame = add_product(&stack, "FRAME", 3500, 2).await;
    let customer = email("aborted");
    let order = place(&stack, &customer, &[(&frame, 1)], "tok_timeout").await;
    wait_for_step(&stack, order, "authorize_payment").await;
    let reason = serde_json::json!({ "reason": "customer called to cancel" });

    // Nobody without the operator's token changes money or stock.
    let (status, headers, problem) = operate(&stack, order, "abort", None, reason.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"operator\"");
    assert_eq!(headers["content-type"], "application/problem+json");
    let (status, _, _) = operate(&stack, order, "abort", Some("test-operator-token-0002"), reason.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, problem) =
        operate(&stack, order, "abort", Some(OPERATOR_TOKEN), serde_json::json!({ "reason": " " })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let unknown = checkout_domain::OrderId::from_uuid(uuid::Uuid::now_v7());
    let (status, _, _) = operate(&stack, unknown, "abort", Some(OPERATOR_TOKEN), reason.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let saga = get(&stack, "orchestrator", &format!("/sagas/{order}")).await.body;
    assert!(operator_transitions(&saga, "OperatorAbort").is_empty(), "a refused request changed the saga: {saga:#}");

    let (status, _, saga) = operate(&stack, order, "abort", Some(OPERATOR_TOKEN), reason.clone()).await;
    assert_eq!(status, StatusCode::OK, "{saga:#}");
    assert_eq!(saga["status"], "compensating");
    let abort = &operator_transitions(&saga, "OperatorAbort")[0];
    assert_eq!(
        (abort["operator"].as_str(), abort["reason"].as_str()),
        (Some("ops"), Some("customer called to cancel"))
    );
    assert_eq!(abort["commands"], serde_json::json!(["VoidPayment"]), "the authorization may be held: void it");

    let view = wait_until_finished(&stack, order).await;
    assert_eq!(
        (view["status"].as_str(), view["cancellation"]["code"].as_str(), view["cancellation"]["detail"].as_str()),
        (Some("CANCELLED"), Some("aborted_by_operator"), Some("customer called to cancel"))
    );
    let saga = wait_until_saga_finished(&stack, order).await;
    assert_eq!((saga["status"].as_str(), saga["payment"].as_str()), (Some("cancelled"), Some("voided")), "{saga:#}");
    // Twice is harmless: the saga has finished, and says so.
    let (status, _, problem) = operate(&stack, order, "abort", Some(OPERATOR_TOKEN), reason).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["type"].as_str().unwrap().ends_with("/saga-finished"), "{problem}");
    assert_eq!(mail_to(&stack, &customer).len(), 1, "one cancellation email");
    invariants::check(&stack, &[order], &[(&frame, 2)]).await;
}

async fn an_operator_retries_a_waiting_step_and_is_refused_what_does_not_apply(stack: Arc<Stack>) {
    let lamp = add_product(&stack, "LAMP", 5900, 3).await;
    let waiting = place(&stack, &email("retried"), &[(&lamp, 1)], "tok_timeout").await;
    wait_for_step(&stack, waiting, "authorize_payment").await;
    let reason = serde_json::json!({ "reason": "gateway restarted" });
    let (status, _, saga) = operate(&stack, waiting, "retry", Some(OPERATOR_TOKEN), reason.clone()).await;
    assert_eq!(status, StatusCode::OK, "{saga:#}");
    let retry = &operator_transitions(&saga, "OperatorRetry")[0];
    assert_eq!(retry["commands"], serde_json::json!(["AuthorizePayment"]));
    assert_eq!(retry["operator"], "ops");
    assert_eq!(saga["current_step"]["attempt"], 1, "a fresh attempt budget: {saga:#}");
    // The gateway still never answers: the retried step runs out and compensates as before.
    let view = wait_until_finished(&stack, waiting).await;
    assert_eq!(view["cancellation"]["code"], "payment_timed_out");

    let confirmed = place(&stack, &email("confirmed"), &[(&lamp, 1)], "tok_visa").await;
    assert_eq!(wait_until_finished(&stack, confirmed).await["status"], "CONFIRMED");
    wait_until_saga_finished(&stack, confirmed).await;
    for action in ["abort", "retry"] {
        let (status, _, problem) = operate(&stack, confirmed, action, Some(OPERATOR_TOKEN), reason.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {problem}");
        assert!(problem["type"].as_str().unwrap().ends_with("/saga-finished"), "{problem}");
    }
    wait_until_saga_finished(&stack, waiting).await;
    invariants::check(&stack, &[waiting, confirmed], &[(&lamp, 3)]).await;
}

async fn an_operator_sets_stock_and_the_change_is_recorded(stack: Arc<Stack>) {
    let sku = unique("RESTOCK");
    let url = format!("{}/products/{sku}", stack.url("inventory"));
    let body = |on_hand: i64| {
        serde_json::json!({
            "name": "Restocked tee",
            "unit_price": { "amount_minor": 1999, "currency": "EUR" },
            "on_hand": on_hand,
            "reason": "delivery from the warehouse",
        })
    };
    let anonymous = stack.http.put(&url).json(&body(5)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let created = stack.http.put(&url).bearer_auth(OPERATOR_TOKEN).json(&body(5)).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let order = place(&stack, &email("restock"), &[(&sku, 2)], "tok_visa").await;
    assert_eq!(wait_until_finished(&stack, order).await["status"], "CONFIRMED");
    let updated = stack.http.put(&url).bearer_auth(OPERATOR_TOKEN).json(&body(10)).send().await.unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let product: Value = updated.json().await.unwrap();
    assert_eq!((product["on_hand"].as_i64(), product["available"].as_i64()), (Some(10), Some(10)));
    let negative = stack.http.put(&url).bearer_auth(OPERATOR_TOKEN).json(&body(-1)).send().await.unwrap();
    assert_eq!(negative.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let changes: Vec<(String, Option<i32>, i32)> =
        sqlx::query_as("SELECT operator, on_hand_from, on_hand_to FROM stock_changes WHERE sku = $1 ORDER BY id")
            .bind(&sku)
            .fetch_all(stack.db("inventory"))
            .await
            .unwrap();
    assert_eq!(changes, [("ops".to_owned(), None, 5), ("ops".to_owned(), Some(3), 10)]);
}

async fn the_load_generator_follows_every_checkout_to_its_end(stack: Arc<Stack>) {
    let json = std::env::temp_dir().join(format!("checkout-load-{}.json", unique("run")));
    let output = tokio::process::Command::new(crate::support::stack::binary("checkout-load"))
        .args(["--order-url", &stack.url("order"), "--inventory-url", &stack.url("inventory")])
        .args([
            "--kafka",
            &stack.kafka.settings.bootstrap_servers,
            "--topic-prefix",
            &stack.kafka.settings.topic_prefix,
        ])
        .args(["--rate", "10", "--warmup", "1", "--duration", "3", "--declined", "20", "--seed", "7", "--settle", "60"])
        .args(["--products", "5"])
        .arg("--json")
        .arg(&json)
        .env("CHECKOUT_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("POST → saga finished"), "{printed}");
    let summary: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(summary["offered"], 30, "three seconds at 10/s: {summary:#}");
    assert_eq!((summary["finished"].as_u64(), summary["unfinished"].as_u64()), (Some(30), Some(0)), "{summary:#}");
    let outcomes = summary["outcomes"].as_object().unwrap();
    let confirmed = outcomes.get("confirmed:confirmed").and_then(Value::as_u64).unwrap_or(0);
    let declined = outcomes.get("declined:cancelled").and_then(Value::as_u64).unwrap_or(0);
    assert_eq!(confirmed + declined, 30, "every checkout ended as its card says: {summary:#}");
    assert!(declined > 0, "the seeded mix declines some: {summary:#}");
    assert!(summary["errors"].as_object().unwrap().is_empty(), "{summary:#}");
    for latency in ["accept_ms", "terminal_ms", "finished_ms"] {
        assert_eq!(summary[latency]["count"], 30, "{latency}: {summary:#}");
    }
    let (accept, terminal, finished) = (
        summary["accept_ms"]["p50"].as_f64().unwrap(),
        summary["terminal_ms"]["p50"].as_f64().unwrap(),
        summary["finished_ms"]["p50"].as_f64().unwrap(),
    );
    assert!(0.0 < accept && accept <= terminal && terminal <= finished, "{summary:#}");

    // The confirmed checkouts bought from the five products, not from one.
    let sold: Vec<(String, i32)> = sqlx::query_as(
        "SELECT p.sku, c.on_hand_to - p.on_hand FROM products p
           JOIN LATERAL (SELECT on_hand_to FROM stock_changes s WHERE s.sku = p.sku ORDER BY id DESC LIMIT 1) c ON true
          WHERE p.sku LIKE 'LOAD-PLENTY-%' ORDER BY p.sku",
    )
    .fetch_all(stack.db("inventory"))
    .await
    .unwrap();
    assert_eq!(sold.len(), 5, "{sold:?}");
    let total: i32 = sold.iter().map(|(_, n)| n).sum();
    // The warm-up's checkouts (not in the summary) bought too.
    assert!(u64::try_from(total).unwrap() >= confirmed, "every confirmed checkout took one unit: {sold:?}");
    assert!(sold.iter().filter(|(_, n)| *n > 0).count() >= 2, "spread over the products: {sold:?}");
}
