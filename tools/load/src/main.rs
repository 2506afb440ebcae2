//! `checkout-load`: drives checkouts at the order API and measures them.
//!
//! Open loop by default: checkouts are sent at a target rate (constant or
//! Poisson) whatever the system does, and each latency is measured from the
//! checkout's *scheduled* time, so a stalled system shows as latency instead
//! of quietly slowing the generator (no coordinated omission). `--clients N`
//! runs a closed loop instead. Three latencies go into HDR histograms:
//! accepted (POST → `202`), terminal (POST → the order confirmed or
//! cancelled) and finished (POST → the saga's last email). Completion is
//! followed from the system's event topics, not by polling orders.

#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a measuring tool: rates and latencies are statistics, never money"
)]

mod feed;
mod report;
mod schedule;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use checkout_domain::OrderId;
use clap::Parser;
use serde_json::json;
use tokio::sync::oneshot;

use crate::feed::{Event, Feed};
use crate::report::{Kind, Tally};
use crate::schedule::{Arrivals, Schedule};

/// Drives checkouts at the order API and reports how long they take.
#[derive(Debug, Parser)]
#[command(name = "checkout-load", version, about, long_about = None)]
struct Cli {
    /// Base URL of the order service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    order_url: String,
    /// Base URL of the inventory service, to stock the benchmark's products.
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    inventory_url: String,
    /// An operator token of the inventory (its `OPERATOR_TOKENS`).
    #[arg(long, env = "CHECKOUT_OPERATOR_TOKEN", default_value = "local-operator-token", hide_env_values = true)]
    operator_token: String,
    /// Kafka, where completion is followed.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    kafka: String,
    #[arg(long, env = "KAFKA_TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Open loop: checkouts per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Open loop: how checkouts arrive.
    #[arg(long, value_enum, default_value_t = Arrivals::Constant)]
    arrivals: Arrivals,
    /// Closed loop instead: this many clients, each checking out again once
    /// its last checkout finished.
    #[arg(long, conflicts_with_all = ["rate", "arrivals"])]
    clients: Option<usize>,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds run first and not measured.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Percent of checkouts with a card that is declined.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    declined: u32,
    /// Percent of checkouts for a product that is out of stock.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    out_of_stock: u32,
    /// Seconds to wait, after the last checkout is sent, for the rest to finish.
    #[arg(long, default_value_t = 60)]
    settle: u64,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed for the arrivals and the mix (random when absent).
    #[arg(long)]
    seed: Option<u64>,
}

/// The benchmark's products: one with stock for every checkout, one with none.
const PLENTY: &str = "LOAD-PLENTY";
const NONE: &str = "LOAD-NONE";

/// One checkout in flight.
struct Pending {
    scheduled: Instant,
    kind: Kind,
    measured: bool,
    terminal: bool,
    /// Told when the saga has finished (closed loop).
    done: Option<oneshot::Sender<()>>,
}

/// Everything the generator knows, behind one lock.
struct State {
    pending: HashMap<OrderId, Pending>,
    /// Events for orders whose `202` has not been seen yet.
    early: HashMap<OrderId, Vec<(Event, Instant)>>,
    tally: Tally,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    fn apply(&mut self, order: OrderId, event: Event, at: Instant) {
        let Some(pending) = self.pending.get_mut(&order) else {
            self.early.entry(order).or_default().push((event, at));
            return;
        };
        let since = at.saturating_duration_since(pending.scheduled);
        let measured = pending.measured;
        match event {
            Event::Confirmed | Event::Cancelled if !pending.terminal => {
                pending.terminal = true;
                if measured {
                    self.tally.terminal(since, event == Event::Confirmed, pending.kind);
                }
            }
            Event::Finished => {
                if let Some(mut pending) = self.pending.remove(&order) {
                    if measured {
                        self.tally.finished(since);
                    }
                    if let Some(done) = pending.done.take() {
                        let _ = done.send(());
                    }
                }
            }
            Event::Confirmed | Event::Cancelled => {}
        }
    }
}

/// Places one checkout scheduled at `scheduled`; returns a receiver told
/// when its saga finished, or `None` when it was not accepted.
async fn checkout(
    http: &reqwest::Client,
    cli: &Cli,
    state: &Shared,
    kind: Kind,
    scheduled: Instant,
    measured: bool,
) -> Option<oneshot::Receiver<()>> {
    let (sku, card) = match kind {
        Kind::Confirmed => (PLENTY, "tok_visa"),
        Kind::Declined => (PLENTY, "tok_insufficient_funds"),
        Kind::OutOfStock => (NONE, "tok_visa"),
    };
    let id = uuid::Uuid::now_v7();
    let body = json!({
        "customer_id": "checkout-load",
        "email": format!("load-{id}@example.com"),
        "items": [{ "sku": sku, "quantity": 1 }],
        "payment": { "card_token": card },
    });
    let sent = http
        .post(format!("{}/orders", cli.order_url))
        .header("Idempotency-Key", id.to_string())
        .json(&body)
        .send()
        .await;
    let accepted_at = Instant::now();
    let reply = match sent {
        Ok(response) if response.status().is_success() => response.json::<serde_json::Value>().await.ok(),
        Ok(response) => {
            lock(state).tally.error(&format!("HTTP {}", response.status().as_u16()), measured);
            return None;
        }
        Err(error) => {
            let kind = if error.is_connect() {
                "connect"
            } else if error.is_timeout() {
                "timeout"
            } else {
                "request"
            };
            lock(state).tally.error(kind, measured);
            return None;
        }
    };
    let Some(order) = reply.and_then(|r| r["order_id"].as_str().and_then(|id| id.parse::<OrderId>().ok())) else {
        lock(state).tally.error("unreadable 202", measured);
        return None;
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
    Some(finished)
}

fn pick(rng: &mut fastrand::Rng, cli: &Cli) -> Kind {
    let roll = rng.u32(0..100);
    if roll < cli.declined {
        Kind::Declined
    } else if roll < cli.declined + cli.out_of_stock {
        Kind::OutOfStock
    } else {
        Kind::Confirmed
    }
}

/// Gives the benchmark's products their stock through the inventory's operator API.
async fn stock(http: &reqwest::Client, cli: &Cli, units: u64) -> anyhow::Result<()> {
    for (sku, on_hand) in [(PLENTY, units), (NONE, 0)] {
        let response = http
            .put(format!("{}/products/{sku}", cli.inventory_url))
            .bearer_auth(&cli.operator_token)
            .json(&json!({
                "name": "checkout-load product",
                "unit_price": { "amount_minor": 1000, "currency": "EUR" },
                "on_hand": on_hand,
                "reason": "checkout-load: stock for a benchmark run",
            }))
            .send()
            .await
            .with_context(|| format!("reaching the inventory at {}", cli.inventory_url))?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "stocking {sku}: {status} {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Arc::new(Cli::parse());
    anyhow::ensure!(cli.rate > 0.0 && cli.rate.is_finite(), "--rate must be a positive number");
    anyhow::ensure!(cli.declined + cli.out_of_stock <= 100, "--declined and --out-of-stock add up to over 100 %");
    let seed = cli.seed.unwrap_or_else(|| fastrand::u64(..));
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build().context("building the HTTP client")?;
    let total_secs = cli.warmup + cli.duration;
    // Enough for every checkout the run could send, twice over.
    let expected = (cli.rate * total_secs as f64).ceil() as u64;
    stock(&http, &cli, expected.saturating_mul(2).max(10_000) + 1000).await?;

    let feed = Feed::start(&cli.kafka, &cli.topic_prefix)?;
    let state: Shared = Arc::new(Mutex::new(State {
        pending: HashMap::new(),
        early: HashMap::new(),
        tally: Tally::new().context("creating the histograms")?,
    }));
    let feeding = {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                match feed.next().await {
                    Ok((order, event, at)) => lock(&state).apply(order, event, at),
                    Err(error) => eprintln!("completion feed: {error:#}"),
                }
            }
        })
    };

    let start = Instant::now();
    let measure_from = start + Duration::from_secs(cli.warmup);
    let stop_at = measure_from + Duration::from_secs(cli.duration);
    let progress = tokio::spawn(report::progress(Arc::clone(&state), start, measure_from));
    let mode = if let Some(clients) = cli.clients {
        closed_loop(&http, &cli, &state, clients, seed, measure_from, stop_at).await;
        format!("closed loop, {clients} clients")
    } else {
        open_loop(&http, &cli, &state, seed, start, measure_from, stop_at).await;
        format!("open loop, {} checkouts/s ({:?})", cli.rate, cli.arrivals)
    };
    // Let the last checkouts finish.
    let settle_by = Instant::now() + Duration::from_secs(cli.settle);
    while Instant::now() < settle_by && !lock(&state).pending.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.abort();
    feeding.abort();
    let state = lock(&state);
    let unfinished = state.pending.values().filter(|p| p.measured).count();
    let summary = state.tally.summary(&mode, seed, Duration::from_secs(cli.duration), unfinished);
    println!("{}", report::table(&summary));
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn open_loop(
    http: &reqwest::Client,
    cli: &Arc<Cli>,
    state: &Shared,
    seed: u64,
    start: Instant,
    measure_from: Instant,
    stop_at: Instant,
) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x00c0_ffee);
    let mut tasks = Vec::new();
    for due in Schedule::new(cli.arrivals, cli.rate, seed) {
        let scheduled = start + due;
        if scheduled >= stop_at {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let kind = pick(&mut rng, cli);
        let measured = scheduled >= measure_from;
        lock(state).tally.offered(measured);
        let (http, cli, state) = (http.clone(), Arc::clone(cli), Arc::clone(state));
        tasks.push(tokio::spawn(async move { checkout(&http, &cli, &state, kind, scheduled, measured).await }));
    }
    futures::future::join_all(tasks).await;
}

async fn closed_loop(
    http: &reqwest::Client,
    cli: &Arc<Cli>,
    state: &Shared,
    clients: usize,
    seed: u64,
    measure_from: Instant,
    stop_at: Instant,
) {
    let tasks = (0..clients).map(|client| {
        let (http, cli, state) = (http.clone(), Arc::clone(cli), Arc::clone(state));
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed ^ client as u64);
            while Instant::now() < stop_at {
                let scheduled = Instant::now();
                let measured = scheduled >= measure_from;
                lock(&state).tally.offered(measured);
                let kind = pick(&mut rng, &cli);
                match checkout(&http, &cli, &state, kind, scheduled, measured).await {
                    Some(finished) => {
                        let _ = tokio::time::timeout(Duration::from_secs(cli.settle), finished).await;
                    }
                    None => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
    });
    futures::future::join_all(tasks).await;
}
