//! The chaos suite: two instances of every service, on the native stack's
//! real broker and PostgreSQL, take checkouts at a steady rate while a
//! seeded schedule SIGKILLs random service instances (and starts them
//! again), SIGKILLs the broker once and stops PostgreSQL once. Then, black
//! box through the services' APIs and the SMTP server, it checks what a
//! customer and an accountant would: every accepted order reached an end,
//! one order per idempotency key, money captured once and only for confirmed
//! orders, stock conserved, one email per order, no dead letters, and that
//! checkouts placed away from the faults confirmed.
//!
//! ```sh
//! cargo test -p checkout-e2e --test chaos                                  # short form (CI): ~2–3 min
//! CHAOS_FORM=long cargo test --release -p checkout-e2e --test chaos -- --nocapture   # long form
//! ```
//!
//! `CHAOS_CHECKOUTS`, `CHAOS_RATE` (per second), `CHAOS_KILLS`,
//! `CHAOS_BROKER_KILLS`, `CHAOS_DB_OUTAGES`, `CHAOS_DB_OUTAGE_SECS` and
//! `CHAOS_SEED` override the form (all faults 0: a baseline); the seed is
//! printed, so a failing schedule can be run again.

// Test code: a failed unwrap is a failed test; statistics are floats.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::float_arithmetic
)]

#[path = "../support/mod.rs"]
mod support;

mod check;
mod faults;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkout_domain::OrderId;
use libtest_mimic::{Arguments, Trial};

use crate::check::check;
use crate::faults::{Window, inject};
use reqwest::StatusCode;
use serde_json::Value;
use support::checkout::{checkout_body, unique};
use support::stack::Stack;
use time::OffsetDateTime;

/// How much chaos, for how long.
#[derive(Clone, Copy, Debug)]
struct Form {
    checkouts: usize,
    rate: f64,
    kills: usize,
    broker_kills: usize,
    db_outages: usize,
    db_outage: Duration,
    seed: u64,
}

impl Form {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok();
        let long = var("CHAOS_FORM").as_deref() == Some("long");
        let mut form = if long {
            Self { checkouts: 10_000, rate: 15.0, kills: 24, db_outage: Duration::from_secs(30), ..Self::short() }
        } else {
            Self::short()
        };
        form.checkouts = var("CHAOS_CHECKOUTS").and_then(|v| v.parse().ok()).unwrap_or(form.checkouts);
        form.rate = var("CHAOS_RATE").and_then(|v| v.parse().ok()).unwrap_or(form.rate);
        form.kills = var("CHAOS_KILLS").and_then(|v| v.parse().ok()).unwrap_or(form.kills);
        form.broker_kills = var("CHAOS_BROKER_KILLS").and_then(|v| v.parse().ok()).unwrap_or(form.broker_kills);
        form.db_outages = var("CHAOS_DB_OUTAGES").and_then(|v| v.parse().ok()).unwrap_or(form.db_outages);
        form.db_outage =
            var("CHAOS_DB_OUTAGE_SECS").and_then(|v| v.parse().ok()).map_or(form.db_outage, Duration::from_secs);
        form.seed = var("CHAOS_SEED").and_then(|v| v.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
        form
    }

    fn short() -> Self {
        Self {
            checkouts: 400,
            rate: 4.0,
            kills: 6,
            broker_kills: 1,
            db_outages: 1,
            db_outage: Duration::from_secs(10),
            seed: 0,
        }
    }

    fn load_duration(&self) -> Duration {
        Duration::from_secs_f64(self.checkouts as f64 / self.rate)
    }
}

/// Production step deadlines, not the e2e tests' short ones: a fault may
/// make a saga late, and only a fault longer than a step's patience may
/// cancel it.
const PRODUCTION_POLICY: [(&str, &str); 3] = [
    ("SAGA_AUTHORIZE_TIMEOUT_MS", "5000"),
    ("SAGA_AUTHORIZE_MAX_ATTEMPTS", "2"),
    ("PAYMENT_GATEWAY_TIMEOUT_MS", "2000"),
];

/// A checkout placed within this long before a fault, or this long after it
/// ended, met the fault (in flight, or while groups rebalanced after it: a
/// killed member's partitions wait for its 10 s session to expire).
const LEAD: Duration = Duration::from_secs(2);
const RECOVERY: Duration = Duration::from_secs(15);

/// At most this many emails can be sent twice per notification instance
/// interrupted between an SMTP send and its commit (the documented window:
/// the SMTP server accepted, then the record of it was lost): the instance
/// was killed, or the database went away under it, which interrupts every
/// instance at once.
const DUPLICATE_WINDOW_PER_INTERRUPTION: usize = 6;

/// The notification instances the stack runs (`Stack::scaled`).
const INSTANCES: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    /// In stock, good card: must confirm unless a fault got in the way.
    Good,
    /// The card is declined: cancelled, nothing charged.
    Declined,
    /// For a product with a few units only: some confirm, the rest are out of stock.
    Scarce,
}

/// A checkout as the client saw it.
#[derive(Clone, Debug)]
struct Checkout {
    key: String,
    email: String,
    kind: Kind,
    sku: String,
    placed: Instant,
    placed_at: OffsetDateTime,
    /// `None`: never accepted.
    order: Option<OrderId>,
    /// Requests that failed (instance down, `503`) before one was accepted.
    retries: u32,
    /// A repeat of the accepted request, with the same key, named this order.
    replayed_as: Option<OrderId>,
}

struct Products {
    plenty: String,
    plenty_stock: i32,
    scarce: String,
    scarce_stock: i32,
}

fn order_urls(stack: &Stack) -> Vec<String> {
    stack.instances("order").map(support::stack::Service::url).collect()
}

/// POSTs the checkout to the order instances in turn until one accepts it
/// (an instance may be down, or its database), with the same key throughout.
async fn place(http: reqwest::Client, urls: Arc<Vec<String>>, mut checkout: Checkout, nth: usize) -> Checkout {
    let body = checkout_body(&checkout.email, &[(&checkout.sku, 1)], card_for(checkout.kind));
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut attempt = nth;
    while Instant::now() < give_up {
        let url = format!("{}/orders", urls[attempt % urls.len()]);
        attempt += 1;
        let sent = http.post(&url).header("Idempotency-Key", &checkout.key).json(&body).send().await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let reply: Value = response.json().await.unwrap();
                checkout.order = Some(reply["order_id"].as_str().unwrap().parse().unwrap());
                break;
            }
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {}
            Ok(response) => {
                let status = response.status();
                panic!("checkout {} answered {status}: {}", checkout.key, response.text().await.unwrap_or_default())
            }
            // The instance is down: try the other one.
            Err(_) => {}
        }
        checkout.retries += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Every twentieth client repeats its request, as after a lost answer.
    if let (Some(_), 0) = (checkout.order, nth % 20) {
        let url = format!("{}/orders", urls[(nth + 1) % urls.len()]);
        for _ in 0..480 {
            let sent = http.post(&url).header("Idempotency-Key", &checkout.key).json(&body).send().await;
            if let Ok(response) = sent.as_ref()
                && response.status().is_success()
            {
                let reply: Value = sent.unwrap().json().await.unwrap();
                checkout.replayed_as = Some(reply["order_id"].as_str().unwrap().parse().unwrap());
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    checkout
}

fn card_for(kind: Kind) -> &'static str {
    match kind {
        Kind::Good | Kind::Scarce => "tok_visa",
        Kind::Declined => "tok_insufficient_funds",
    }
}

/// Checkouts at `form.rate` per second, open loop: each starts on its tick
/// whatever the earlier ones are doing.
async fn load(stack: Arc<Stack>, form: Form, products: Arc<Products>) -> Vec<Checkout> {
    let urls = Arc::new(order_urls(&stack));
    let mut rng = fastrand::Rng::with_seed(form.seed ^ 0x5eed);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / form.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut clients = Vec::with_capacity(form.checkouts);
    for nth in 0..form.checkouts {
        tick.tick().await;
        let kind = match rng.u32(0..100) {
            0..85 => Kind::Good,
            85..95 => Kind::Declined,
            _ => Kind::Scarce,
        };
        let sku = if kind == Kind::Scarce { products.scarce.clone() } else { products.plenty.clone() };
        let checkout = Checkout {
            key: unique("chaos-key"),
            email: format!("{}@example.com", unique("chaos").to_lowercase()),
            kind,
            sku,
            placed: Instant::now(),
            placed_at: OffsetDateTime::now_utc(),
            order: None,
            retries: 0,
            replayed_as: None,
        };
        clients.push(tokio::spawn(place(stack.http.clone(), Arc::clone(&urls), checkout, nth)));
    }
    let mut checkouts = Vec::with_capacity(clients.len());
    for client in clients {
        checkouts.push(client.await.unwrap());
    }
    checkouts
}

async fn add_stock(stack: &Stack, label: &str, on_hand: i32) -> String {
    support::checkout::add_product(stack, label, 1500, on_hand).await
}

/// What a run did, to be checked.
struct Run {
    stack: Arc<Stack>,
    products: Arc<Products>,
    checkouts: Vec<Checkout>,
    windows: Vec<Window>,
    load_ended: OffsetDateTime,
}

/// Starts the stack, then checks out under the faults until both are done.
async fn drive(form: Form) -> Run {
    let mut env: Vec<(&str, String)> = PRODUCTION_POLICY.iter().map(|&(k, v)| (k, v.to_owned())).collect();
    env.push(("RUST_LOG", "warn,checkout=info".to_owned()));
    // `key` or `partition` for every service, to put a consumer ordering
    // through the faults (unset: each service's own default).
    if let Ok(ordering) = std::env::var("CHAOS_CONSUMER_ORDERING") {
        env.push(("CONSUMER_ORDERING", ordering));
    }
    let stack = Arc::new(Stack::scaled(&env, INSTANCES).await);
    println!("service logs: {}; seed {} (CHAOS_SEED)", stack.logs.display(), form.seed);
    let plenty_stock = i32::try_from(form.checkouts).unwrap() + 10;
    let products = Arc::new(Products {
        plenty: add_stock(&stack, "CHAOS", plenty_stock).await,
        plenty_stock,
        scarce: add_stock(&stack, "SCARCE", 10).await,
        scarce_stock: 10,
    });
    println!(
        "{} checkouts at {}/s over {:.0} s; faults (at, what, how long):",
        form.checkouts,
        form.rate,
        form.load_duration().as_secs_f64()
    );
    let began = Instant::now();
    let injector = tokio::spawn(inject(Arc::clone(&stack), form, began));
    let checkouts = load(Arc::clone(&stack), form, Arc::clone(&products)).await;
    let windows = injector.await.unwrap();
    let load_ended = OffsetDateTime::now_utc();
    for service in &stack.services {
        stack.wait_instance_ready(service).await;
    }
    Run { stack, products, checkouts, windows, load_ended }
}

async fn chaos(form: Form) {
    let run = drive(form).await;
    let figures = check(&run).await;
    check::report(&form, &run, &figures);
    let floor = if figures.quiet == 0 { 1.0 } else { figures.quiet_confirmed as f64 / figures.quiet as f64 };
    assert!(floor >= 0.95, "only {:.1} % of the good checkouts placed away from faults confirmed", floor * 100.0);
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let form = Form::from_env();
    let trial = Trial::test("checkouts_survive_kills_a_broker_restart_and_a_database_outage", move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(chaos(form));
        Ok(())
    });
    libtest_mimic::run(&args, vec![trial]).exit_code()
}
