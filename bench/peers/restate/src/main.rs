//! The checkout saga as a Restate workflow, to compare with our services.
//!
//! `Checkout/{order_id}/run` takes the same body as our `POST /orders` and
//! runs the saga's steps in order, each a journaled `ctx.run` whose result is
//! an event of the size of our messages (our envelope, the same fields):
//! reserve stock, authorize the card, confirm the order, capture the card,
//! notify the customer. The order's status is a durable state write. A
//! declined card releases the stock and notifies the cancellation; an
//! out-of-stock product cancels before the card is touched. The ingress
//! answers when the workflow has finished, so the caller's latency is the
//! whole saga's.
//!
//! The steps do no I/O of their own: the comparison is of what each design
//! pays to make a step durable and move to the next one.

use std::net::SocketAddr;

use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Our fake gateway's card that is always declined.
const DECLINED_CARD: &str = "tok_insufficient_funds";
/// The load generator's product that has no stock.
const NO_STOCK_SKU: &str = "LOAD-NONE";

#[derive(Debug, Deserialize)]
struct Checkout {
    customer_id: String,
    email: String,
    items: Vec<Line>,
    payment: Payment,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
}

#[derive(Debug, Deserialize)]
struct Payment {
    card_token: String,
}

/// What the caller gets back once the saga has finished.
#[derive(Debug, Serialize)]
struct Outcome {
    order_id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// A step's journaled result, in our messages' envelope.
#[derive(Debug, Serialize, Deserialize)]
struct Event {
    specversion: String,
    id: String,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    schemaversion: String,
    subject: String,
    time: String,
    correlationid: String,
    causationid: String,
    datacontenttype: String,
    data: Value,
}

impl Event {
    fn new(source: &str, kind: &str, order: &str, causation: &str, data: Value) -> Self {
        let now = time::OffsetDateTime::now_utc();
        Self {
            specversion: "1.0".to_owned(),
            id: uuid::Uuid::now_v7().to_string(),
            source: format!("/checkout/{source}"),
            kind: kind.to_owned(),
            schemaversion: "1.0".to_owned(),
            subject: order.to_owned(),
            time: now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            correlationid: order.to_owned(),
            causationid: causation.to_owned(),
            datacontenttype: "application/json".to_owned(),
            data,
        }
    }

    fn accepted(&self) -> bool {
        !matches!(self.kind.as_str(), "InventoryReservationRejected" | "PaymentDeclined")
    }
}

/// Unit price of every product, in minor units (as the load generator stocks them).
const UNIT_PRICE_MINOR: u64 = 1000;

fn total_minor(lines: &[Line]) -> u64 {
    lines.iter().map(|line| u64::from(line.quantity) * UNIT_PRICE_MINOR).sum()
}

fn reserve(order: &str, lines: &[Line]) -> Event {
    if lines.iter().any(|line| line.sku == NO_STOCK_SKU) {
        let data = json!({
            "lines": lines,
            "reason": "out_of_stock",
            "short": lines.iter().filter(|l| l.sku == NO_STOCK_SKU).map(|l| json!({"sku": l.sku, "requested": l.quantity, "available": 0})).collect::<Vec<_>>(),
        });
        return Event::new("inventory", "InventoryReservationRejected", order, order, data);
    }
    let data = json!({
        "reservation_id": uuid::Uuid::now_v7().to_string(),
        "lines": lines.iter().map(|l| json!({
            "sku": l.sku,
            "quantity": l.quantity,
            "unit_price": { "amount_minor": UNIT_PRICE_MINOR, "currency": "EUR" },
            "name": "checkout-load product",
        })).collect::<Vec<_>>(),
        "total": { "amount_minor": total_minor(lines), "currency": "EUR" },
        "expires_at": time::OffsetDateTime::now_utc()
            .saturating_add(time::Duration::minutes(15))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    });
    Event::new("inventory", "InventoryReserved", order, order, data)
}

fn authorize(order: &str, card: &str, amount: u64, causation: &str) -> Event {
    if card == DECLINED_CARD {
        let data = json!({
            "amount": { "amount_minor": amount, "currency": "EUR" },
            "reason": "insufficient_funds",
            "gateway_code": "card_declined",
        });
        return Event::new("payment", "PaymentDeclined", order, causation, data);
    }
    let data = json!({
        "authorization_id": uuid::Uuid::now_v7().to_string(),
        "amount": { "amount_minor": amount, "currency": "EUR" },
        "gateway_reference": format!("auth_{}", uuid::Uuid::now_v7().simple()),
        "card": { "brand": "visa", "last4": "4242" },
    });
    Event::new("payment", "PaymentAuthorized", order, causation, data)
}

fn journaled(event: Event) -> impl Future<Output = HandlerResult<Json<Event>>> {
    std::future::ready(Ok(Json(event)))
}

pub struct CheckoutWorkflow;

#[restate_sdk::workflow(name = "Checkout")]
impl CheckoutWorkflow {
    #[handler(name = "run")]
    async fn run(&self, ctx: WorkflowContext<'_>, request: Json<Checkout>) -> HandlerResult<Json<Outcome>> {
        let order = ctx.key().to_owned();
        let request = request.into_inner();
        let lines = request.items.clone();
        let amount = total_minor(&lines);
        ctx.set("status", "placed".to_owned());

        let reserved = ctx.run(|| journaled(reserve(&order, &lines))).name("reserve_inventory").await?.into_inner();
        if !reserved.accepted() {
            return cancel(&ctx, &order, &request, "out_of_stock", &reserved.id).await;
        }

        let authorized = ctx
            .run(|| journaled(authorize(&order, &request.payment.card_token, amount, &reserved.id)))
            .name("authorize_payment")
            .await?
            .into_inner();
        if !authorized.accepted() {
            let released = ctx
                .run(|| {
                    let data = json!({ "reservation_id": reserved.data["reservation_id"], "lines": lines, "reason": "payment_declined" });
                    journaled(Event::new("inventory", "InventoryReleased", &order, &authorized.id, data))
                })
                .name("release_inventory")
                .await?
                .into_inner();
            return cancel(&ctx, &order, &request, "payment_declined", &released.id).await;
        }

        let confirmed = ctx
            .run(|| {
                let data = json!({
                    "customer_id": request.customer_id,
                    "lines": reserved.data["lines"],
                    "total": { "amount_minor": amount, "currency": "EUR" },
                    "authorization_id": authorized.data["authorization_id"],
                    "reservation_id": reserved.data["reservation_id"],
                    "confirmed_at": authorized.time,
                });
                journaled(Event::new("order", "OrderConfirmed", &order, &authorized.id, data))
            })
            .name("confirm_order")
            .await?
            .into_inner();
        ctx.set("status", "confirmed".to_owned());

        let captured = ctx
            .run(|| {
                let data = json!({
                    "authorization_id": authorized.data["authorization_id"],
                    "capture_id": uuid::Uuid::now_v7().to_string(),
                    "amount": { "amount_minor": amount, "currency": "EUR" },
                });
                journaled(Event::new("payment", "PaymentCaptured", &order, &confirmed.id, data))
            })
            .name("capture_payment")
            .await?
            .into_inner();

        ctx.run(|| journaled(notified(&order, &request, "order_confirmed", &captured.id)))
            .name("notify_customer")
            .await?;
        Ok(Json(Outcome { order_id: order, status: "confirmed", reason: None }))
    }
}

fn notified(order: &str, request: &Checkout, template: &str, causation: &str) -> Event {
    let data = json!({
        "channel": "email",
        "template": template,
        "recipient_hash": format!("{:x}", fxhash(&request.email)),
        "message_id": format!("<{}@checkout.local>", uuid::Uuid::now_v7()),
    });
    Event::new("notification", "CustomerNotified", order, causation, data)
}

/// The notification records a hash, never the address (as our service does).
fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

async fn cancel(
    ctx: &WorkflowContext<'_>,
    order: &str,
    request: &Checkout,
    reason: &'static str,
    causation: &str,
) -> HandlerResult<Json<Outcome>> {
    let cancelled = ctx
        .run(|| journaled(Event::new("order", "OrderCancelled", order, causation, json!({ "reason": reason }))))
        .name("cancel_order")
        .await?
        .into_inner();
    ctx.set("status", "cancelled".to_owned());
    ctx.run(|| journaled(notified(order, request, "order_cancelled", &cancelled.id)))
        .name("notify_cancellation")
        .await?;
    Ok(Json(Outcome { order_id: order.to_owned(), status: "cancelled", reason: Some(reason) }))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let address = std::env::var("CHECKOUT_RESTATE_ADDR").unwrap_or_else(|_| "127.0.0.1:19080".to_owned());
    let address: SocketAddr = match address.parse() {
        Ok(address) => address,
        Err(error) => {
            eprintln!("CHECKOUT_RESTATE_ADDR={address}: {error}");
            std::process::exit(2);
        }
    };
    HttpServer::new(Endpoint::builder().bind(CheckoutWorkflow).build()).listen_and_serve(address).await;
}
