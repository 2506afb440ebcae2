//! What a scenario does to the shop, and how it looks inside.

use std::time::Duration;

use checkout_domain::OrderId;
use checkout_testkit::{ReceivedMail, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::stack::Stack;

/// An HTTP reply: status, headers, JSON body (`Null` when there is none).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// A short unique name for a scenario's products and customers.
pub fn unique(label: &str) -> String {
    format!("{label}-{}", checkout_testkit::unique_suffix()[..8].to_uppercase())
}

/// A product only this scenario uses, with `on_hand` in stock.
pub async fn add_product(stack: &Stack, label: &str, unit_price_minor: i64, on_hand: i32) -> String {
    let sku = unique(label);
    sqlx::query("INSERT INTO products (sku, name, unit_price_minor, currency, on_hand) VALUES ($1, $2, $3, 'EUR', $4)")
        .bind(&sku)
        .bind(format!("Test product {sku}"))
        .bind(unit_price_minor)
        .bind(on_hand)
        .execute(stack.db("inventory"))
        .await
        .unwrap();
    sku
}

pub fn checkout_body(email: &str, items: &[(&str, i64)], card_token: &str) -> Value {
    json!({
        "customer_id": "e2e-customer",
        "email": email,
        "items": items.iter().map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity})).collect::<Vec<_>>(),
        "payment": {"card_token": card_token},
    })
}

pub async fn post_order(stack: &Stack, body: &Value, idempotency_key: Option<&str>) -> Reply {
    let mut request = stack.http.post(format!("{}/orders", stack.url("order"))).json(body);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    reply(request.send().await.unwrap()).await
}

pub async fn post_raw(stack: &Stack, content_type: &str, body: Vec<u8>) -> Reply {
    let request =
        stack.http.post(format!("{}/orders", stack.url("order"))).header("content-type", content_type).body(body);
    reply(request.send().await.unwrap()).await
}

/// `POST /orders/{order}/cancel` with `body` (none when `Null`).
pub async fn cancel(stack: &Stack, order: OrderId, body: Value) -> Reply {
    let mut request = stack.http.post(format!("{}/orders/{order}/cancel", stack.url("order")));
    if !body.is_null() {
        request = request.json(&body);
    }
    reply(request.send().await.unwrap()).await
}

pub async fn get(stack: &Stack, service: &str, path: &str) -> Reply {
    reply(stack.http.get(format!("{}{path}", stack.url(service))).send().await.unwrap()).await
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply { status, headers, body }
}

/// Places an order that must be accepted; returns its id.
pub async fn place(stack: &Stack, email: &str, items: &[(&str, i64)], card_token: &str) -> OrderId {
    let reply = post_order(stack, &checkout_body(email, items, card_token), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    reply.body["order_id"].as_str().unwrap().parse().unwrap()
}

/// Polls the order until it is confirmed or cancelled; returns its view.
pub async fn wait_until_finished(stack: &Stack, order: OrderId) -> Value {
    eventually(Duration::from_secs(60), &format!("order {order} to be confirmed or cancelled"), || async move {
        let view = get(stack, "order", &format!("/orders/{order}")).await.body;
        (view["status"] != "PENDING").then_some(view)
    })
    .await
}

/// Polls the saga until it has finished (its notification step included).
pub async fn wait_until_saga_finished(stack: &Stack, order: OrderId) -> Value {
    eventually(Duration::from_secs(60), &format!("the saga of {order} to finish"), || async move {
        let saga = get(stack, "orchestrator", &format!("/sagas/{order}")).await.body;
        matches!(saga["status"].as_str(), Some("completed" | "cancelled" | "needs_attention")).then_some(saga)
    })
    .await
}

pub fn mail_to(stack: &Stack, email: &str) -> Vec<ReceivedMail> {
    stack.smtp.mail().into_iter().filter(|mail| mail.to.iter().any(|to| to == email)).collect()
}

pub async fn payment_status(stack: &Stack, order: OrderId) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
        .bind(order.as_uuid())
        .fetch_optional(stack.db("payment"))
        .await
        .unwrap()
}

/// `(on_hand, reserved)` of a product.
pub async fn stock(stack: &Stack, sku: &str) -> (i32, i32) {
    sqlx::query_as("SELECT on_hand, reserved FROM products WHERE sku = $1")
        .bind(sku)
        .fetch_one(stack.db("inventory"))
        .await
        .unwrap()
}
