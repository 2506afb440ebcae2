//! `checkout-load`: drives checkouts at the order API (or at the same saga
//! as a Restate workflow, `--target restate`) and measures them.
//!
//! Open loop by default: checkouts are sent at a target rate (constant or
//! Poisson) whatever the system does, and each latency is measured from the
//! checkout's *scheduled* time, so a stalled system shows as latency instead
//! of quietly slowing the generator (no coordinated omission). `--clients N`
//! runs a closed loop instead. Three latencies go into HDR histograms:
//! accepted (POST → `202`), terminal (POST → the order confirmed or
//! cancelled) and finished (POST → the saga's last email). Completion is
//! followed from the system's event topics, not by polling orders.
//! `--sweep` runs open-loop steps at rising rates until one breaks a limit
//! and reports the saturation point, with `--plot` drawing it.

#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a measuring tool: rates and latencies are statistics, never money"
)]

mod cpu;
mod feed;
mod plot;
mod report;
mod run;
mod schedule;
mod sweep;
mod target;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

use crate::run::{Bench, Loop, Mix, Plan};
use crate::schedule::Arrivals;
use crate::sweep::{Growth, Latency, Limits, Spec};
use crate::target::{CheckoutApi, System, Target};

/// Drives checkouts at the order API and reports how long they take.
#[derive(Debug, Parser)]
#[command(name = "checkout-load", version, about, long_about = None)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
struct Cli {
    /// The system to drive.
    #[arg(long, value_enum, default_value_t = System::Checkout)]
    target: System,
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
    /// `--target restate`: Restate's ingress, where the `Checkout` workflow is registered.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    restate_url: String,
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
    /// Seconds run first and not measured (before every step of a sweep).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Percent of checkouts with a card that is declined.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    declined: u32,
    /// Percent of checkouts for a product that is out of stock.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    out_of_stock: u32,
    /// Products the checkouts buy, each checkout one of them at random. Many
    /// spread the inventory's row locks as a real catalog does; `1` puts
    /// every checkout on one hot row.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    products: u32,
    /// Seconds to wait, after the last checkout is sent, for the rest to finish.
    #[arg(long, default_value_t = 60)]
    settle: u64,
    /// Write the results here as JSON (with `--sweep`: every step).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed for the arrivals and the mix (random when absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Measure the CPU time of these processes over the measured window
    /// (repeat, or separate with commas).
    #[arg(long = "cpu-pid", value_delimiter = ',')]
    cpu_pids: Vec<u32>,
    /// Measure the CPU time of a component on its own: `NAME=PROCESS[|PROCESS…]`,
    /// the processes whose executable name is PROCESS or that have it as an
    /// argument or an argument's last path segment (repeat for several).
    #[arg(long = "cpu-component")]
    cpu_components: Vec<cpu::Component>,
    /// Measure the CPU time of each component of the checkout stack on this
    /// machine: PostgreSQL, the broker, the mail catcher and the five services.
    #[arg(long)]
    cpu_stack: bool,

    /// Step the open-loop rate up until a step breaks a limit, and report
    /// the saturation point: the highest step that held.
    #[arg(long, conflicts_with_all = ["clients", "rate", "duration"])]
    sweep: bool,
    /// Sweep: the first step's rate (checkouts per second).
    #[arg(long, default_value_t = 10.0, requires = "sweep")]
    from: f64,
    /// Sweep: each step's rate is the last one's times this.
    #[arg(long, default_value_t = 1.5, requires = "sweep", conflicts_with = "step")]
    step_factor: f64,
    /// Sweep: each step's rate is the last one's plus this, instead.
    #[arg(long, requires = "sweep")]
    step: Option<f64>,
    /// Sweep: never beyond this rate.
    #[arg(long, default_value_t = 5000.0, requires = "sweep")]
    max_rate: f64,
    /// Sweep: seconds measured per step (after its own warm-up).
    #[arg(long, default_value_t = 10, requires = "sweep")]
    step_duration: u64,
    /// Sweep: a step breaks when this latency's p99 is over `--until-p99`.
    #[arg(long, value_enum, default_value_t = Latency::Terminal, requires = "sweep")]
    latency: Latency,
    /// Sweep: p99 limit, in milliseconds.
    #[arg(long, default_value_t = 1000.0, requires = "sweep")]
    until_p99: f64,
    /// Sweep: limit on failed plus unfinished checkouts, in percent of those offered.
    #[arg(long, default_value_t = 1.0, requires = "sweep")]
    max_error_pct: f64,
    /// Sweep: a step breaks when throughput is under this percent of the offered rate.
    #[arg(long, default_value_t = 90.0, requires = "sweep")]
    min_achieved_pct: f64,
    /// Sweep: draw p50 and p99 against achieved throughput into this SVG file.
    #[arg(long, requires = "sweep")]
    plot: Option<PathBuf>,
}

impl Cli {
    fn check(&self) -> anyhow::Result<()> {
        let positive = |value: f64| value > 0.0 && value.is_finite();
        anyhow::ensure!(positive(self.rate), "--rate must be a positive number");
        anyhow::ensure!(self.declined + self.out_of_stock <= 100, "--declined and --out-of-stock add up to over 100 %");
        anyhow::ensure!(self.clients != Some(0), "--clients must be at least 1");
        if self.sweep {
            anyhow::ensure!(positive(self.from) && positive(self.max_rate), "--from and --max-rate must be positive");
            anyhow::ensure!(self.step_factor > 1.0 && self.step_factor.is_finite(), "--step-factor must be over 1");
            anyhow::ensure!(self.step.is_none_or(positive), "--step must be positive");
            anyhow::ensure!(positive(self.until_p99), "--until-p99 must be positive");
            anyhow::ensure!(self.step_duration > 0, "--step-duration must be at least 1 s");
        }
        if self.target == System::Restate && self.latency == Latency::Accept {
            anyhow::bail!("--latency accept: the Restate call has no separate accept");
        }
        Ok(())
    }

    fn target(&self) -> anyhow::Result<Target> {
        match self.target {
            System::Checkout => Target::checkout(CheckoutApi {
                order_url: self.order_url.clone(),
                inventory_url: self.inventory_url.clone(),
                operator_token: self.operator_token.clone(),
                products: self.products,
            }),
            System::Restate => Target::restate(&self.restate_url),
        }
    }

    fn spec(&self) -> Spec {
        Spec {
            from: self.from,
            growth: self.step.map_or(Growth::Factor(self.step_factor), Growth::Step),
            max_rate: self.max_rate,
            step_duration: Duration::from_secs(self.step_duration),
            latency: self.latency,
            limits: Limits {
                p99_ms: self.until_p99,
                max_error_pct: self.max_error_pct,
                min_achieved_share: self.min_achieved_pct / 100.0,
            },
            arrivals: self.arrivals,
        }
    }
}

fn write_json(path: &PathBuf, value: &impl serde::Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.check()?;
    let seed = cli.seed.unwrap_or_else(|| fastrand::u64(..));
    let mix = Mix { declined: cli.declined, out_of_stock: cli.out_of_stock };
    let mut components = if cli.cpu_stack { cpu::Component::stack() } else { Vec::new() };
    components.extend(cli.cpu_components.iter().cloned());
    let watch = cpu::Watch { pids: cli.cpu_pids.clone(), components };
    let bench = Bench::start(cli.target()?, &cli.kafka, &cli.topic_prefix, mix, watch)?;
    let plan = Plan {
        pace: match cli.clients {
            Some(clients) => Loop::Closed { clients },
            None => Loop::Open { rate: cli.rate, arrivals: cli.arrivals },
        },
        warmup: Duration::from_secs(cli.warmup),
        duration: Duration::from_secs(cli.duration),
        settle: Duration::from_secs(cli.settle),
        seed,
        progress: !cli.sweep,
    };
    if !cli.sweep {
        let summary = bench.run(&plan).await?;
        println!("{}", report::table(&summary));
        if let Some(path) = &cli.json {
            write_json(path, &summary)?;
        }
        return Ok(());
    }
    let report = sweep::sweep(&bench, &cli.spec(), plan).await?;
    print!("{}", sweep::conclusion(&report));
    if let Some(path) = &cli.json {
        write_json(path, &report)?;
    }
    if let Some(path) = &cli.plot {
        plot::draw(&report, path)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}
