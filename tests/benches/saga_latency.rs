//! End-to-end saga latency on the native stack: the five service binaries,
//! Apache Kafka and Postgres. Prints, for sequential checkouts, the time
//! from `POST /orders` to the order being confirmed or cancelled (what a
//! polling client sees) and to the saga having finished (the email sent),
//! for the happy path and two compensation paths; then the throughput of a
//! burst of concurrent checkouts.
//!
//! `cargo build --release --bins && cargo bench -p checkout-e2e --bench saga_latency`
//! (the bench runs the release binaries: rebuild them after every change).
//! Environment: `BENCH_SAMPLES` (default 100), `BENCH_BURST` (200),
//! `BENCH_FETCH_WAIT_MS` (the services' `KAFKA_FETCH_WAIT_MAX_MS`; their default when unset),
//! `BENCH_RUST_LOG` (the services' `RUST_LOG`, default `warn`),
//! `BENCH_TRACING=1` to export every span over OTLP (to a receiver in this
//! process), for the cost of tracing.

// Benchmark code: a failed unwrap aborts the run; statistics are floats.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::float_arithmetic
)]

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use support::checkout::{add_product, get, place};
use support::stack::Stack;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Polls every 2 ms, so the measurement is at most that much late.
async fn poll_until(mut done: impl AsyncFnMut() -> bool) -> Instant {
    loop {
        if done().await {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.record(u64::try_from(elapsed.as_micros()).unwrap()).unwrap();
}

fn print(name: &str, histogram: &Histogram<u64>) {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<48} p50 {:>7.1} ms   p90 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms   (n={})",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        histogram.max() as f64 / 1000.0,
        histogram.len()
    );
}

async fn measure(stack: &Stack, label: &str, sku: &str, card: &str, samples: u64) {
    let mut terminal = Histogram::<u64>::new(3).unwrap();
    let mut finished = Histogram::<u64>::new(3).unwrap();
    for i in 0..samples {
        let started = Instant::now();
        let order = place(stack, &format!("bench{i}@example.com"), &[(sku, 1)], card).await;
        let order_path = format!("/orders/{order}");
        let saga_path = format!("/sagas/{order}");
        let at_terminal = poll_until(async || get(stack, "order", &order_path).await.body["status"] != "PENDING").await;
        let at_finished = poll_until(async || {
            let status = get(stack, "orchestrator", &saga_path).await.body["status"].clone();
            status == "completed" || status == "cancelled"
        })
        .await;
        record(&mut terminal, at_terminal - started);
        record(&mut finished, at_finished - started);
    }
    print(&format!("{label}: POST -> order terminal"), &terminal);
    print(&format!("{label}: POST -> saga finished (email sent)"), &finished);
}

async fn burst(stack: &Stack, sku: &str, orders: u64) {
    let started = Instant::now();
    let emails: Vec<String> = (0..orders).map(|i| format!("burst{i}@example.com")).collect();
    let items = [(sku, 1)];
    let placed = futures::future::join_all(emails.iter().map(|email| place(stack, email, &items, "tok_visa"))).await;
    let placed_in = started.elapsed();
    let mut completed = 0_usize;
    for order in &placed {
        let saga_path = format!("/sagas/{order}");
        let mut status = String::new();
        poll_until(async || {
            get(stack, "orchestrator", &saga_path).await.body["status"]
                .as_str()
                .unwrap_or_default()
                .clone_into(&mut status);
            matches!(status.as_str(), "completed" | "cancelled" | "needs_attention")
        })
        .await;
        completed += usize::from(status == "completed");
    }
    let finished_in = started.elapsed();
    println!(
        "{:<48} {orders} orders accepted in {:.2} s ({:.0}/s), all sagas finished in {:.2} s ({:.1} sagas/s), {completed} completed",
        "burst of concurrent checkouts",
        placed_in.as_secs_f64(),
        orders as f64 / placed_in.as_secs_f64(),
        finished_in.as_secs_f64(),
        orders as f64 / finished_in.as_secs_f64()
    );
}

fn main() {
    let samples = env_or("BENCH_SAMPLES", 100);
    let burst_size = env_or("BENCH_BURST", 200);
    let fetch_wait = env_or(
        "BENCH_FETCH_WAIT_MS",
        u64::try_from(checkout_kafka::KafkaSettings::default().fetch_wait_max.as_millis()).unwrap(),
    );
    let tracing = env_or("BENCH_TRACING", 0) == 1;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let receiver = checkout_testkit::OtlpReceiver::start();
        let log_filter = std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into());
        let mut env = vec![("KAFKA_FETCH_WAIT_MAX_MS", fetch_wait.to_string()), ("RUST_LOG", log_filter)];
        // The tests' short step deadlines would cancel a large burst's sagas
        // while they queue; a throughput figure must not include timeouts.
        for variable in [
            "SAGA_RESERVE_TIMEOUT_MS",
            "SAGA_AUTHORIZE_TIMEOUT_MS",
            "SAGA_AFTER_PIVOT_TIMEOUT_MS",
            "SAGA_COMPENSATION_TIMEOUT_MS",
        ] {
            env.push((variable, "60000".to_owned()));
        }
        if tracing {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()));
        }
        let mut stack = Stack::start(&env).await;
        let stock = i32::try_from(samples * 3 + burst_size).unwrap();
        let sku = add_product(&stack, "BENCH", 1000, stock).await;
        println!(
            "\nsaga latency on the native stack (KAFKA_FETCH_WAIT_MAX_MS={fetch_wait}, span export {}; logs in {})\n",
            if tracing { "on" } else { "off" },
            stack.logs.display()
        );
        measure(&stack, "confirmed (tok_visa)", &sku, "tok_visa", samples).await;
        measure(&stack, "compensated (tok_decline)", &sku, "tok_decline", samples).await;
        let sold_out = add_product(&stack, "BENCH-NONE", 1000, 0).await;
        measure(&stack, "cancelled (out of stock)", &sold_out, "tok_visa", samples).await;
        burst(&stack, &sku, burst_size).await;
        stack.stop();
        if tracing {
            println!("{:<48} {}", "spans exported", receiver.spans().len());
        }
    });
}
