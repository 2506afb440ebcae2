//! The systems the generator can drive. The open loop, the closed loop and
//! the sweep only ask a [`Target`] to place one checkout; how it is placed
//! and how its end is seen is the target's business:
//!
//! - `checkout`: our services. `POST /orders` answers `202`; the order's end
//!   is seen later on the event topics (the [`Feed`](crate::feed::Feed)).
//! - `restate`: the same saga as a Restate workflow (`bench/peers/restate`).
//!   The ingress call is synchronous: it answers when the workflow has
//!   finished, so terminal and finished are both that answer, and there is
//!   no separate accept.

use std::time::Instant;

use anyhow::Context as _;
use checkout_domain::OrderId;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::report::Kind;
use crate::run::{Pending, Shared, lock};

/// The benchmark's products: `--products` with stock for every checkout
/// (`LOAD-PLENTY-0`, …), and one with none.
const PLENTY: &str = "LOAD-PLENTY";
const NONE: &str = "LOAD-NONE";

/// The stocked product a checkout buys: picked by its id's random bits, so
/// a run spreads evenly over the products and needs no random source here.
fn plenty(id: uuid::Uuid, products: u32) -> String {
    let random = u32::from_le_bytes(id.as_bytes()[12..16].try_into().unwrap_or_default());
    format!("{PLENTY}-{}", random % products.max(1))
}

/// Which system `--target` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// Our five services (order API, Kafka event topics).
    Checkout,
    /// The Restate workflow of bench/peers/restate, through Restate's ingress.
    Restate,
}

/// Where the checkout's services are.
#[derive(Debug)]
pub struct CheckoutApi {
    pub order_url: String,
    pub inventory_url: String,
    pub operator_token: String,
    /// How many stocked products the checkouts spread over.
    pub products: u32,
}

/// A system under load.
#[derive(Debug)]
pub enum Target {
    Checkout { http: reqwest::Client, api: CheckoutApi },
    Restate { http: reqwest::Client, url: String },
}

/// What became of one checkout once it was sent.
#[derive(Debug)]
pub enum Placed {
    /// Accepted; the receiver is told when the saga has finished.
    Following(oneshot::Receiver<()>),
    /// Answered and finished already.
    Done,
    /// Refused, failed or given up on (counted by the target).
    Failed,
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder().pool_max_idle_per_host(1024).build().context("building the HTTP client")
}

fn request_error(error: &reqwest::Error) -> &'static str {
    if error.is_connect() {
        "connect"
    } else if error.is_timeout() {
        "timeout"
    } else {
        "request"
    }
}

/// The body of `POST /orders` (and of the Restate workflow's `run`).
fn body(kind: Kind, id: uuid::Uuid, products: u32) -> Value {
    let (sku, card) = match kind {
        Kind::Confirmed => (plenty(id, products), "tok_visa"),
        Kind::Declined => (plenty(id, products), "tok_insufficient_funds"),
        Kind::OutOfStock => (NONE.to_owned(), "tok_visa"),
    };
    json!({
        "customer_id": "checkout-load",
        "email": format!("load-{id}@example.com"),
        "items": [{ "sku": sku, "quantity": 1 }],
        "payment": { "card_token": card },
    })
}

impl Target {
    pub fn checkout(api: CheckoutApi) -> anyhow::Result<Self> {
        Ok(Self::Checkout { http: http_client()?, api })
    }

    pub fn restate(url: &str) -> anyhow::Result<Self> {
        Ok(Self::Restate { http: http_client()?, url: url.trim_end_matches('/').to_owned() })
    }

    /// The system and where it is, for reports and plots.
    pub fn describe(&self) -> String {
        match self {
            Self::Checkout { api, .. } => format!("checkout at {}", api.order_url),
            Self::Restate { url, .. } => format!("restate at {url}"),
        }
    }

    /// Whether completion is seen on the event topics (so the feed must run).
    pub fn needs_feed(&self) -> bool {
        matches!(self, Self::Checkout { .. })
    }

    /// Readies the system for `expected` checkouts: stocks our products
    /// (the Restate workflow keeps no stock).
    pub async fn prepare(&self, expected: u64) -> anyhow::Result<()> {
        let Self::Checkout { http, api } = self else { return Ok(()) };
        // Every product could be bought by every checkout: ids are random.
        let units = expected.saturating_mul(2).max(10_000) + 1000;
        let stocked = (0..api.products).map(|n| (format!("{PLENTY}-{n}"), units));
        for (sku, on_hand) in stocked.chain([(NONE.to_owned(), 0)]) {
            let response = http
                .put(format!("{}/products/{sku}", api.inventory_url))
                .bearer_auth(&api.operator_token)
                .json(&json!({
                    "name": "checkout-load product",
                    "unit_price": { "amount_minor": 1000, "currency": "EUR" },
                    "on_hand": on_hand,
                    "reason": "checkout-load: stock for a benchmark run",
                }))
                .send()
                .await
                .with_context(|| format!("reaching the inventory at {}", api.inventory_url))?;
            let status = response.status();
            anyhow::ensure!(
                status.is_success(),
                "stocking {sku}: {status} {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Places one checkout scheduled at `scheduled`, waiting no later than
    /// `give_up` for a synchronous answer.
    pub async fn place(
        &self,
        state: &Shared,
        kind: Kind,
        scheduled: Instant,
        measured: bool,
        give_up: Instant,
    ) -> Placed {
        match self {
            Self::Checkout { http, api } => place_order(http, api, state, kind, scheduled, measured).await,
            Self::Restate { http, url } => run_workflow(http, url, state, kind, scheduled, measured, give_up).await,
        }
    }
}

async fn place_order(
    http: &reqwest::Client,
    api: &CheckoutApi,
    state: &Shared,
    kind: Kind,
    scheduled: Instant,
    measured: bool,
) -> Placed {
    let id = uuid::Uuid::now_v7();
    let sent = http
        .post(format!("{}/orders", api.order_url))
        .header("Idempotency-Key", id.to_string())
        .json(&body(kind, id, api.products))
        .send()
        .await;
    let accepted_at = Instant::now();
    let reply = match sent {
        Ok(response) if response.status().is_success() => response.json::<Value>().await.ok(),
        Ok(response) => {
            lock(state).tally.error(&format!("HTTP {}", response.status().as_u16()), measured);
            return Placed::Failed;
        }
        Err(error) => {
            lock(state).tally.error(request_error(&error), measured);
            return Placed::Failed;
        }
    };
    let Some(order) = reply.and_then(|r| r["order_id"].as_str().and_then(|id| id.parse::<OrderId>().ok())) else {
        lock(state).tally.error("unreadable 202", measured);
        return Placed::Failed;
    };
    let (done, finished) = oneshot::channel();
    let mut state = lock(state);
    if measured {
        state.tally.accepted(accepted_at.saturating_duration_since(scheduled));
    }
    state.pending.insert(order, Pending { scheduled, kind, measured, terminal: false, done: Some(done) });
    for (event, at) in state.early.remove(&order).unwrap_or_default() {
        state.apply(order, event, at);
    }
    Placed::Following(finished)
}

async fn run_workflow(
    http: &reqwest::Client,
    url: &str,
    state: &Shared,
    kind: Kind,
    scheduled: Instant,
    measured: bool,
    give_up: Instant,
) -> Placed {
    let id = uuid::Uuid::now_v7();
    let order = OrderId::from_uuid(id);
    // In flight until answered, like an accepted order: counted as
    // unfinished if the run ends first.
    lock(state).pending.insert(order, Pending { scheduled, kind, measured, terminal: false, done: None });
    let call = async {
        let response = http.post(format!("{url}/Checkout/{id}/run")).json(&body(kind, id, 1)).send().await?;
        let status = response.status();
        let reply = response.json::<Value>().await.ok();
        Ok::<_, reqwest::Error>((status, reply))
    };
    let Ok(answer) = tokio::time::timeout_at(give_up.into(), call).await else {
        return Placed::Failed;
    };
    let at = Instant::now();
    let mut state = lock(state);
    state.pending.remove(&order);
    let (status, reply) = match answer {
        Ok(answer) => answer,
        Err(error) => {
            state.tally.error(request_error(&error), measured);
            return Placed::Failed;
        }
    };
    if !status.is_success() {
        state.tally.error(&format!("HTTP {}", status.as_u16()), measured);
        return Placed::Failed;
    }
    let confirmed = match reply.as_ref().and_then(|r| r["status"].as_str()) {
        Some("confirmed") => true,
        Some("cancelled") => false,
        _ => {
            state.tally.error("unreadable workflow answer", measured);
            return Placed::Failed;
        }
    };
    let latency = at.saturating_duration_since(scheduled);
    if measured {
        state.tally.terminal(latency, confirmed, kind);
    }
    state.tally.finished(measured.then_some(latency), at);
    Placed::Done
}
