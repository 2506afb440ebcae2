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

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkout_domain::OrderId;
use checkout_messages::Topic;
use checkout_testkit::{LocalBroker, LocalPostgres, eventually};
use libtest_mimic::{Arguments, Trial};
use reqwest::StatusCode;
use serde_json::Value;
use support::checkout::{checkout_body, mail_to, unique};
use support::stack::{SERVICES, Stack};
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
/// killed: one in flight per partition it consumes (the documented window:
/// the SMTP server accepted, the process died before recording it).
const DUPLICATE_WINDOW_PER_KILL: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    /// In stock, good card: must confirm unless a fault got in the way.
    Good,
    /// The card is declined: cancelled, nothing charged.
    Declined,
    /// For a product with a few units only: some confirm, the rest are out of stock.
    Scarce,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill { service: &'static str, instance: usize },
    Broker,
    Database,
}

impl Fault {
    fn kind(self) -> &'static str {
        match self {
            Self::Kill { .. } => "service instance SIGKILLed",
            Self::Broker => "broker SIGKILLed",
            Self::Database => "PostgreSQL stopped",
        }
    }
}

/// A fault as it happened.
#[derive(Clone, Debug)]
struct Window {
    fault: Fault,
    start: Instant,
    end: Instant,
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

/// The faults, at seeded random instants within the load, in order.
fn schedule(form: &Form) -> Vec<(Duration, Fault)> {
    let mut rng = fastrand::Rng::with_seed(form.seed);
    let span = form.load_duration().saturating_sub(Duration::from_secs(10)).max(Duration::from_secs(1));
    let at = |rng: &mut fastrand::Rng| Duration::from_secs(5) + span.mul_f64(rng.f64());
    let mut faults: Vec<(Duration, Fault)> = (0..form.kills)
        .map(|_| {
            let service = SERVICES[rng.usize(..SERVICES.len())];
            (at(&mut rng), Fault::Kill { service, instance: rng.usize(..2) })
        })
        .collect();
    faults.extend((0..form.broker_kills).map(|_| (at(&mut rng), Fault::Broker)));
    faults.extend((0..form.db_outages).map(|_| (at(&mut rng), Fault::Database)));
    faults.sort();
    faults
}

/// Injects the scheduled faults for real, one after another.
async fn inject(stack: Arc<Stack>, form: Form, began: Instant) -> Vec<Window> {
    let mut rng = fastrand::Rng::with_seed(form.seed ^ 0xfa17);
    let mut windows = Vec::new();
    for (at, fault) in schedule(&form) {
        tokio::time::sleep((began + at).saturating_duration_since(Instant::now())).await;
        let start = Instant::now();
        match fault {
            Fault::Kill { service, instance } => {
                let target = stack.instances(service).nth(instance).unwrap();
                target.kill();
                tokio::time::sleep(Duration::from_millis(rng.u64(200..3000))).await;
                target.restart();
            }
            Fault::Broker => {
                tokio::task::spawn_blocking(|| {
                    LocalBroker::kill();
                    LocalBroker::start()
                })
                .await
                .unwrap();
            }
            Fault::Database => {
                tokio::task::spawn_blocking(LocalPostgres::stop).await.unwrap();
                tokio::time::sleep(form.db_outage).await;
                tokio::task::spawn_blocking(LocalPostgres::start).await.unwrap();
            }
        }
        let window = Window { fault, start, end: Instant::now() };
        println!(
            "  {:>6.1} s  {:<28} {:>5.1} s{}",
            (start - began).as_secs_f64(),
            fault.kind(),
            (window.end - start).as_secs_f64(),
            match fault {
                Fault::Kill { service, instance } => format!("  ({service} #{instance})"),
                _ => String::new(),
            }
        );
        windows.push(window);
    }
    windows
}

/// What the services say about one order, once it has settled.
#[derive(Debug)]
struct Outcome {
    status: String,
    cancellation: Option<String>,
    total_minor: Option<i64>,
    saga_status: String,
    saga_cause: Value,
    finished_at: OffsetDateTime,
    /// Replies the saga received again or late and absorbed.
    absorbed: usize,
    payment_status: Option<String>,
    captured_minor: Vec<i64>,
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let response = http.get(url).send().await.ok()?;
    if response.status() == StatusCode::NOT_FOUND {
        return Some(Value::Null);
    }
    response.status().is_success().then_some(())?;
    response.json().await.ok()
}

/// Waits until the order and its saga have finished, then reads its payment.
async fn settle(stack: &Stack, order: OrderId, within: Duration) -> Outcome {
    let http = &stack.http;
    let (view, saga) = eventually(within, &format!("order {order} and its saga to finish"), || async {
        let view = get_json(http, &format!("{}/orders/{order}", stack.url("order"))).await?;
        let saga = get_json(http, &format!("{}/sagas/{order}", stack.url("orchestrator"))).await?;
        let finished = matches!(saga["status"].as_str(), Some("completed" | "cancelled" | "needs_attention"));
        (finished && view["status"] != "PENDING").then_some((view, saga))
    })
    .await;
    let payment = get_json(http, &format!("{}/payments/{order}", stack.url("payment"))).await.unwrap_or(Value::Null);
    let operations = payment["operations"].as_array().cloned().unwrap_or_default();
    let transitions = saga["transitions"].as_array().cloned().unwrap_or_default();
    Outcome {
        status: view["status"].as_str().unwrap_or_default().to_owned(),
        cancellation: view["cancellation"]["code"].as_str().map(str::to_owned),
        total_minor: view["total"]["amount_minor"].as_i64(),
        saga_status: saga["status"].as_str().unwrap_or_default().to_owned(),
        saga_cause: saga["outcome"].clone(),
        finished_at: OffsetDateTime::parse(
            saga["updated_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap(),
        absorbed: transitions.iter().filter(|t| t["ignored"] == "not awaited").count(),
        payment_status: payment["status"].as_str().map(str::to_owned),
        captured_minor: operations
            .iter()
            .filter(|op| op["operation"] == "capture" && op["outcome"] == "captured")
            .filter_map(|op| op["amount_minor"].as_i64())
            .collect(),
    }
}

/// The `percent`th percentile (nearest rank, rounded down) of sorted values.
fn percentile(sorted: &[f64], percent: usize) -> f64 {
    sorted.get(sorted.len().saturating_sub(1) * percent / 100).copied().unwrap_or(0.0)
}

async fn add_stock(stack: &Stack, label: &str, on_hand: i32) -> String {
    support::checkout::add_product(stack, label, 1500, on_hand).await
}

async fn on_hand_and_reserved(stack: &Stack, sku: &str) -> (i64, i64) {
    let product = get_json(&stack.http, &format!("{}/products/{sku}", stack.url("inventory"))).await.unwrap();
    (product["on_hand"].as_i64().unwrap(), product["reserved"].as_i64().unwrap())
}

fn dead_letters(stack: &Stack) -> i64 {
    let names = stack.kafka.names();
    Topic::ALL.iter().map(|&topic| stack.kafka.record_count(&names.dead_letter(topic))).sum()
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
    let stack = Arc::new(Stack::scaled(&env, 2).await);
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

/// What the checks found, for the report.
#[derive(Default)]
struct Figures {
    accepted: usize,
    client_retries: u32,
    replays: usize,
    by_status: BTreeMap<(Kind, String), usize>,
    /// Seconds from placing to the saga's end, sorted; and for the quiet ones.
    settle_secs: Vec<f64>,
    quiet_secs: Vec<f64>,
    quiet: usize,
    quiet_confirmed: usize,
    last_settled_after_load: f64,
    absorbed: usize,
    duplicate_emails: usize,
    needs_attention: Vec<String>,
}

/// Waits for every accepted order to settle and checks what must hold.
async fn check(run: &Run) -> Figures {
    let stack = &run.stack;
    let mut outcomes: BTreeMap<OrderId, (Outcome, &Checkout)> = BTreeMap::new();
    let settle_by = Instant::now() + Duration::from_secs(300);
    for checkout in &run.checkouts {
        let order = checkout.order.unwrap_or_else(|| panic!("checkout {} never accepted in 120 s", checkout.key));
        let outcome = settle(stack, order, settle_by.saturating_duration_since(Instant::now())).await;
        outcomes.insert(order, (outcome, checkout));
    }
    // One order per idempotency key, and one key per order.
    assert_eq!(outcomes.len(), run.checkouts.len(), "two keys were given the same order");
    let mut figures = Figures { accepted: outcomes.len(), ..Figures::default() };
    for checkout in &run.checkouts {
        figures.client_retries += checkout.retries;
        if checkout.replayed_as.is_some() {
            assert_eq!(checkout.replayed_as, checkout.order, "key {} named two orders", checkout.key);
            figures.replays += 1;
        }
    }
    let mut confirmed_per_sku: HashMap<&str, i64> = HashMap::new();
    for (order, (outcome, checkout)) in &outcomes {
        let status = match &outcome.cancellation {
            Some(code) => format!("{} ({code})", outcome.status),
            None => outcome.status.clone(),
        };
        *figures.by_status.entry((checkout.kind, status)).or_default() += 1;
        figures.absorbed += outcome.absorbed;
        if outcome.status == "CONFIRMED" {
            *confirmed_per_sku.entry(checkout.sku.as_str()).or_default() += 1;
        }
        if outcome.saga_status == "needs_attention" {
            figures.needs_attention.push(format!("{order}: {}", outcome.saga_cause));
            continue;
        }
        check_money(*order, outcome);
        figures.duplicate_emails += emails_sent(stack, *order, outcome, checkout).await - 1;
    }
    // Stock: what left the shelf is what was confirmed, and nothing stays held.
    let products = &run.products;
    for (sku, initial) in [(&products.plenty, products.plenty_stock), (&products.scarce, products.scarce_stock)] {
        let (on_hand, reserved) = on_hand_and_reserved(stack, sku).await;
        let confirmed = confirmed_per_sku.get(sku.as_str()).copied().unwrap_or(0);
        assert_eq!(i64::from(initial) - on_hand, confirmed, "{sku}: stock not conserved");
        assert_eq!(reserved, 0, "{sku}: stock left reserved");
    }
    assert_eq!(dead_letters(stack), 0, "nothing here is unprocessable: a dead letter is a transient failure lost");
    let notification_kills =
        run.windows.iter().filter(|w| matches!(w.fault, Fault::Kill { service: "notification", .. })).count();
    assert!(
        figures.duplicate_emails <= DUPLICATE_WINDOW_PER_KILL * notification_kills,
        "{} duplicate emails after {notification_kills} notification kills",
        figures.duplicate_emails
    );

    // Liveness: away from the faults, good checkouts confirm.
    let away = |c: &Checkout| run.windows.iter().all(|w| c.placed + LEAD < w.start || c.placed > w.end + RECOVERY);
    let settle_secs = |(o, c): &(Outcome, &Checkout)| (o.finished_at - c.placed_at).as_seconds_f64();
    let quiet: Vec<&(Outcome, &Checkout)> =
        outcomes.values().filter(|(_, c)| c.kind == Kind::Good && away(c)).collect();
    figures.quiet = quiet.len();
    figures.quiet_confirmed = quiet.iter().filter(|(o, _)| o.status == "CONFIRMED").count();
    figures.quiet_secs = quiet.iter().map(|entry| settle_secs(entry)).collect();
    figures.quiet_secs.sort_by(f64::total_cmp);
    figures.settle_secs = outcomes.values().map(settle_secs).collect();
    figures.settle_secs.sort_by(f64::total_cmp);
    let last_settled = outcomes.values().map(|(o, _)| o.finished_at).max().unwrap_or(run.load_ended);
    figures.last_settled_after_load = (last_settled - run.load_ended).as_seconds_f64().max(0.0);
    figures
}

/// A confirmed order was captured once, for its total; a cancelled one not at all.
fn check_money(order: OrderId, outcome: &Outcome) {
    match outcome.status.as_str() {
        "CONFIRMED" => {
            assert_eq!(outcome.saga_status, "completed", "order {order}");
            let total = outcome.total_minor.unwrap();
            assert_eq!(outcome.captured_minor, vec![total], "order {order}: captured once, its total");
            assert_eq!(outcome.payment_status.as_deref(), Some("captured"), "order {order}");
        }
        "CANCELLED" => {
            assert_eq!(outcome.saga_status, "cancelled", "order {order}");
            assert!(outcome.captured_minor.is_empty(), "order {order} cancelled but captured");
            assert_ne!(outcome.payment_status.as_deref(), Some("captured"), "order {order}");
        }
        other => panic!("order {order} is {other}"),
    }
}

/// How many emails the customer got about the order's outcome (at least one).
async fn emails_sent(stack: &Stack, order: OrderId, outcome: &Outcome, checkout: &Checkout) -> usize {
    let kind_of_mail = if outcome.status == "CONFIRMED" { "is confirmed" } else { "cancelled" };
    let mails = eventually(Duration::from_secs(60), &format!("the email about {order}"), || async {
        let mails = mail_to(stack, &checkout.email);
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    assert!(
        mails.iter().all(|m| m.header("Subject").is_some_and(|s| s.contains(kind_of_mail))),
        "order {order} is {} but was emailed otherwise",
        outcome.status
    );
    mails.len()
}

fn report(form: &Form, run: &Run, figures: &Figures) {
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    for window in &run.windows {
        *faults.entry(window.fault.kind()).or_default() += 1;
    }
    println!("chaos, seed {}:", form.seed);
    println!("  checkouts            {} accepted, {} client retries", figures.accepted, figures.client_retries);
    for ((kind, status), count) in &figures.by_status {
        println!("    {kind:?} → {status}: {count}");
    }
    for (kind, count) in &faults {
        println!("  fault                {count} × {kind}");
    }
    println!("  last order settled   {:.1} s after the load ended", figures.last_settled_after_load);
    let secs = &figures.settle_secs;
    println!(
        "  settle time          p50 {:.2} s, p99 {:.2} s, max {:.2} s (placed → saga finished)",
        percentile(secs, 50),
        percentile(secs, 99),
        percentile(secs, 100)
    );
    println!(
        "  away from faults     {} of {} good checkouts confirmed, settled p50 {:.2} s, p99 {:.2} s",
        figures.quiet_confirmed,
        figures.quiet,
        percentile(&figures.quiet_secs, 50),
        percentile(&figures.quiet_secs, 99)
    );
    println!(
        "  duplicates           {} repeated POSTs answered with their order; {} replies absorbed by sagas; {} emails sent twice",
        figures.replays, figures.absorbed, figures.duplicate_emails
    );
    println!("  needs attention      {}", figures.needs_attention.len());
    for line in &figures.needs_attention {
        println!("    {line}");
    }
}

async fn chaos(form: Form) {
    let run = drive(form).await;
    let figures = check(&run).await;
    report(&form, &run, &figures);
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
