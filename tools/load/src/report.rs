//! What a run counts, its progress line and its final report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu;
use crate::run::{Shared, lock};

/// What a checkout is meant to end as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Confirmed,
    Declined,
    OutOfStock,
}

/// Latencies in microseconds, up to an hour, to three significant digits.
fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The counts and histograms of a run (measured checkouts only, except the
/// running totals the progress line shows and the completions counted by
/// when they happened).
pub struct Tally {
    /// The measured window: checkouts scheduled in it are measured, and
    /// sagas that finish in it, whenever placed, are its throughput.
    window: (Instant, Instant),
    completed_in_window: u64,
    offered: u64,
    offered_total: u64,
    accept: Histogram<u64>,
    terminal: Histogram<u64>,
    finished: Histogram<u64>,
    finished_total: u64,
    outcomes: BTreeMap<(Kind, &'static str), u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    pub fn new(window: (Instant, Instant)) -> Result<Self, hdrhistogram::CreationError> {
        Ok(Self {
            window,
            completed_in_window: 0,
            offered: 0,
            offered_total: 0,
            accept: histogram()?,
            terminal: histogram()?,
            finished: histogram()?,
            finished_total: 0,
            outcomes: BTreeMap::new(),
            errors: BTreeMap::new(),
        })
    }

    pub fn offered(&mut self, measured: bool) {
        self.offered_total += 1;
        self.offered += u64::from(measured);
    }

    pub fn accepted(&mut self, latency: Duration) {
        let _ = self.accept.record(micros(latency).max(1));
    }

    pub fn terminal(&mut self, latency: Duration, confirmed: bool, kind: Kind) {
        let _ = self.terminal.record(micros(latency).max(1));
        let outcome = if confirmed { "confirmed" } else { "cancelled" };
        *self.outcomes.entry((kind, outcome)).or_default() += 1;
    }

    /// A saga finished at `at`; `latency` is given for measured checkouts.
    pub fn finished(&mut self, latency: Option<Duration>, at: Instant) {
        self.finished_total += 1;
        if (self.window.0..self.window.1).contains(&at) {
            self.completed_in_window += 1;
        }
        if let Some(latency) = latency {
            let _ = self.finished.record(micros(latency).max(1));
        }
    }

    pub fn completed_in_window(&self) -> u64 {
        self.completed_in_window
    }

    /// Every finished saga, warm-up included (for the progress line).
    pub fn finished_so_far(&self) -> u64 {
        self.finished_total
    }

    pub fn error(&mut self, kind: &str, measured: bool) {
        if measured {
            *self.errors.entry(kind.to_owned()).or_default() += 1;
        }
    }

    pub fn summary(&self, run: &RunInfo, unfinished: usize, cpu: Option<cpu::Usage>) -> Summary {
        let measured = self.window.1.saturating_duration_since(self.window.0);
        let seconds = measured.as_secs_f64().max(f64::EPSILON);
        Summary {
            target: run.target.clone(),
            mode: run.mode.clone(),
            seed: run.seed,
            measured_seconds: measured.as_secs_f64(),
            offered: self.offered,
            offered_per_second: self.offered as f64 / seconds,
            finished: self.finished.len(),
            finished_per_second: self.finished.len() as f64 / seconds,
            completed_in_window: self.completed_in_window,
            throughput_per_second: self.completed_in_window as f64 / seconds,
            unfinished,
            outcomes: self
                .outcomes
                .iter()
                .map(|((kind, outcome), count)| (format!("{}:{outcome}", serde_plain(*kind)), *count))
                .collect(),
            errors: self.errors.clone(),
            accept_ms: Percentiles::of(&self.accept),
            terminal_ms: Percentiles::of(&self.terminal),
            finished_ms: Percentiles::of(&self.finished),
            cpu,
        }
    }
}

/// What a run was, for its report.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub target: String,
    pub mode: String,
    pub seed: u64,
}

fn serde_plain(kind: Kind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.5)),
            p90: ms(histogram.value_at_quantile(0.9)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// The result of a run, as printed and as written with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The system driven, and where.
    pub target: String,
    pub mode: String,
    pub seed: u64,
    pub measured_seconds: f64,
    pub offered: u64,
    pub offered_per_second: f64,
    /// Sagas finished (the customer emailed) among the measured checkouts.
    pub finished: u64,
    pub finished_per_second: f64,
    /// Sagas that finished during the measured window, whenever placed: the
    /// throughput the system sustained.
    pub completed_in_window: u64,
    pub throughput_per_second: f64,
    /// Measured checkouts accepted but not finished when the run ended.
    pub unfinished: usize,
    pub outcomes: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub accept_ms: Percentiles,
    pub terminal_ms: Percentiles,
    pub finished_ms: Percentiles,
    /// CPU of the processes named with `--cpu-pid`, during the window.
    pub cpu: Option<cpu::Usage>,
}

pub fn table(summary: &Summary) -> String {
    let mut out = format!(
        "{} — {}, seed {}: {} checkouts offered in {:.0} s ({:.1}/s), {} sagas finished ({:.1}/s), {} unfinished\n",
        summary.target,
        summary.mode,
        summary.seed,
        summary.offered,
        summary.measured_seconds,
        summary.offered_per_second,
        summary.finished,
        summary.finished_per_second,
        summary.unfinished
    );
    let _ = writeln!(
        out,
        "throughput: {} sagas finished during the window ({:.1}/s)",
        summary.completed_in_window, summary.throughput_per_second
    );
    if let Some(cpu) = &summary.cpu {
        let per = |ms: Option<f64>| ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}"));
        if cpu.processes > 0 {
            let _ = writeln!(
                out,
                "cpu: {:.0} ms in the window over {} of {} processes, {} ms per finished saga",
                cpu.cpu_ms,
                cpu.processes_read,
                cpu.processes,
                per(cpu.ms_per_checkout)
            );
        }
        if !cpu.components.is_empty() {
            let parts: Vec<String> =
                cpu.components.iter().map(|c| format!("{} {}", c.name, per(c.ms_per_checkout))).collect();
            let _ = writeln!(
                out,
                "cpu per finished saga (ms): {}; other {}",
                parts.join(", "),
                per(cpu.other_ms_per_checkout)
            );
        }
        let _ = writeln!(
            out,
            "cpu in the window: load generator {:.0} ms, whole machine {:.0} ms",
            cpu.generator_cpu_ms, cpu.machine_cpu_ms
        );
    }
    let _ = writeln!(
        out,
        "{:<28} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, p) in [
        ("POST → 202", &summary.accept_ms),
        ("POST → order terminal", &summary.terminal_ms),
        ("POST → saga finished", &summary.finished_ms),
    ] {
        if p.count == 0 {
            let _ = writeln!(out, "{name:<28} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}", 0, "-", "-", "-", "-", "-");
            continue;
        }
        let _ = writeln!(
            out,
            "{name:<28} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            p.count, p.p50, p.p90, p.p99, p.p999, p.max
        );
    }
    for (outcome, count) in &summary.outcomes {
        let _ = writeln!(out, "outcome {outcome}: {count}");
    }
    for (error, count) in &summary.errors {
        let _ = writeln!(out, "error {error}: {count}");
    }
    out
}

/// Prints a line every second: offered and finished rate in the last
/// second, checkouts in flight, and terminal latency so far.
pub async fn progress(state: Shared, start: Instant, measure_from: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut offered_before, mut finished_before) = (0, 0);
    loop {
        tick.tick().await;
        let state = lock(&state);
        let tally = &state.tally;
        let (offered, finished) = (tally.offered_total, tally.finished_so_far());
        let phase = if Instant::now() < measure_from { "warm-up" } else { "measuring" };
        println!(
            "{:>5.0} s {phase:<9} offered {:>5}/s  finished {:>5}/s  in flight {:>6}  terminal p50 {:>8.1} ms  p99 {:>8.1} ms",
            start.elapsed().as_secs_f64(),
            offered - offered_before,
            finished - finished_before,
            state.pending.len(),
            tally.terminal.value_at_quantile(0.5) as f64 / 1000.0,
            tally.terminal.value_at_quantile(0.99) as f64 / 1000.0,
        );
        (offered_before, finished_before) = (offered, finished);
    }
}
