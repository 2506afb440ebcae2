//! `--sweep`: open-loop steps at rising rates until one breaks a limit —
//! the chosen latency's p99, the share of failed checkouts, or throughput
//! falling behind the offered rate — and the saturation point: the highest
//! rate that held. The stop rule and the choice of the point are plain
//! functions of the steps' numbers ([`judge`], [`saturation`]).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::report::{Percentiles, Summary};
use crate::run::{Bench, Loop, Plan};
use crate::schedule::Arrivals;

/// Which latency the p99 limit is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Latency {
    /// POST → `202` (the checkout target only).
    Accept,
    /// POST → the order confirmed or cancelled.
    Terminal,
    /// POST → the saga's last step (the customer notified).
    Finished,
}

impl Latency {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Accept => "POST → 202",
            Self::Terminal => "POST → order terminal",
            Self::Finished => "POST → saga finished",
        }
    }

    fn of(self, summary: &Summary) -> &Percentiles {
        match self {
            Self::Accept => &summary.accept_ms,
            Self::Terminal => &summary.terminal_ms,
            Self::Finished => &summary.finished_ms,
        }
    }
}

/// How the rate rises from one step to the next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Growth {
    Factor(f64),
    Step(f64),
}

/// What a step must stay within to hold.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Limits {
    pub p99_ms: f64,
    pub max_error_pct: f64,
    /// Achieved throughput as a share of the offered rate, at least.
    pub min_achieved_share: f64,
}

/// The rates to try: from `from`, rising by `growth`, up to `max`.
pub fn rates(from: f64, growth: Growth, max: f64) -> Vec<f64> {
    let mut rates = Vec::new();
    let mut rate = from;
    while rate <= max && rate > 0.0 && rate.is_finite() && rates.len() < 1000 {
        rates.push(rate);
        let next = match growth {
            Growth::Factor(factor) => rate * factor,
            Growth::Step(step) => rate + step,
        };
        // Two decimals are plenty for a rate, and keep the steps' names short.
        let next = (next * 100.0).round() / 100.0;
        if next <= rate {
            break;
        }
        rate = next;
    }
    rates
}

/// A step's numbers, as the stop rule sees them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measure {
    /// Checkouts per second the step aimed to send.
    pub rate: f64,
    /// Measured checkouts sent, and their rate.
    pub offered: u64,
    pub sent_per_second: f64,
    /// Sagas finished per second during the window.
    pub achieved_per_second: f64,
    /// Of the chosen latency, in milliseconds; `None` when nothing finished.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Refused or failed checkouts, and those still unfinished at the end.
    pub errors: u64,
    pub unfinished: u64,
}

impl Measure {
    pub fn of(rate: f64, summary: &Summary, latency: Latency) -> Self {
        let p = latency.of(summary);
        let finished = |value: f64| (p.count > 0).then_some(value);
        Self {
            rate,
            offered: summary.offered,
            sent_per_second: summary.offered_per_second,
            achieved_per_second: summary.throughput_per_second,
            p50_ms: finished(p.p50),
            p99_ms: finished(p.p99),
            errors: summary.errors.values().sum(),
            unfinished: summary.unfinished as u64,
        }
    }

    /// Failed and unfinished checkouts, in percent of those offered.
    pub fn error_pct(&self) -> f64 {
        if self.offered == 0 {
            return 0.0;
        }
        (self.errors + self.unfinished) as f64 * 100.0 / self.offered as f64
    }
}

/// Why a step did not hold.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum Breach {
    P99 { p99_ms: f64, limit_ms: f64 },
    Errors { error_pct: f64, limit_pct: f64 },
    Throughput { achieved_pct: f64, limit_pct: f64 },
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::P99 { p99_ms, limit_ms } => write!(f, "p99 {p99_ms:.1} ms > {limit_ms} ms"),
            Self::Errors { error_pct, limit_pct } => write!(f, "errors {error_pct:.2} % > {limit_pct} %"),
            Self::Throughput { achieved_pct, limit_pct } => {
                write!(f, "achieved {achieved_pct:.1} % of offered < {limit_pct:.0} %")
            }
        }
    }
}

/// The limits a step broke; none means it held.
pub fn judge(step: &Measure, limits: &Limits) -> Vec<Breach> {
    let mut breaches = Vec::new();
    if let Some(p99_ms) = step.p99_ms.filter(|&p99| p99 > limits.p99_ms) {
        breaches.push(Breach::P99 { p99_ms, limit_ms: limits.p99_ms });
    }
    let error_pct = step.error_pct();
    if error_pct > limits.max_error_pct {
        breaches.push(Breach::Errors { error_pct, limit_pct: limits.max_error_pct });
    }
    let achieved_pct = step.achieved_per_second * 100.0 / step.rate;
    if achieved_pct < limits.min_achieved_share * 100.0 {
        breaches.push(Breach::Throughput { achieved_pct, limit_pct: limits.min_achieved_share * 100.0 });
    }
    breaches
}

/// The saturation point: the index of the last step that held before the
/// first that broke (`held`, per step in the order run, rates rising);
/// `None` when the first step already broke.
pub fn saturation(held: impl IntoIterator<Item = bool>) -> Option<usize> {
    held.into_iter().take_while(|&held| held).count().checked_sub(1)
}

/// One step, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub measure: Measure,
    pub breaches: Vec<Breach>,
    pub summary: Summary,
}

/// A sweep's shape.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub from: f64,
    pub growth: Growth,
    pub max_rate: f64,
    pub step_duration: Duration,
    pub latency: Latency,
    pub limits: Limits,
    pub arrivals: Arrivals,
}

/// The result of a sweep, as written with `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub latency: Latency,
    pub limits: Limits,
    pub steps: Vec<Step>,
    /// The highest step that held.
    pub saturation: Option<Measure>,
    pub stopped: String,
}

/// Runs the steps; `base` gives the warm-up, settle and seed of each.
pub async fn sweep(bench: &Bench, spec: &Spec, base: Plan) -> anyhow::Result<Report> {
    let mut steps: Vec<Step> = Vec::new();
    let mut stopped = format!("reached --max-rate {}", spec.max_rate);
    println!(
        "sweep of {}: {} p99 ≤ {} ms, errors ≤ {} %, achieved ≥ {:.0} % of offered",
        bench.target.describe(),
        spec.latency.describe(),
        spec.limits.p99_ms,
        spec.limits.max_error_pct,
        spec.limits.min_achieved_share * 100.0
    );
    for (index, rate) in rates(spec.from, spec.growth, spec.max_rate).into_iter().enumerate() {
        let plan = Plan {
            pace: Loop::Open { rate, arrivals: spec.arrivals },
            duration: spec.step_duration,
            seed: base.seed.wrapping_add(index as u64),
            progress: false,
            ..base
        };
        let summary = bench.run(&plan).await?;
        let measure = Measure::of(rate, &summary, spec.latency);
        let breaches = judge(&measure, &spec.limits);
        println!("{}", step_line(index + 1, &measure, &breaches));
        let broke = !breaches.is_empty();
        if broke {
            let reasons: Vec<String> = breaches.iter().map(ToString::to_string).collect();
            stopped = format!("step {} at {rate}/s broke: {}", index + 1, reasons.join(", "));
        }
        steps.push(Step { measure, breaches, summary });
        if broke {
            break;
        }
    }
    let saturation = saturation(steps.iter().map(|step| step.breaches.is_empty())).map(|i| steps[i].measure.clone());
    Ok(Report {
        target: bench.target.describe(),
        latency: spec.latency,
        limits: spec.limits,
        steps,
        saturation,
        stopped,
    })
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}"))
}

fn step_line(number: usize, m: &Measure, breaches: &[Breach]) -> String {
    let mut line = format!(
        "step {number:>2}: offered {:>8.1}/s (sent {:>8.1}/s)  achieved {:>8.1}/s  p50 {:>8} ms  p99 {:>8} ms  errors {} + {} unfinished ({:.2} %)  ",
        m.rate,
        m.sent_per_second,
        m.achieved_per_second,
        ms(m.p50_ms),
        ms(m.p99_ms),
        m.errors,
        m.unfinished,
        m.error_pct()
    );
    if breaches.is_empty() {
        line.push_str("held");
    } else {
        let reasons: Vec<String> = breaches.iter().map(ToString::to_string).collect();
        let _ = write!(line, "broke: {}", reasons.join(", "));
    }
    line
}

/// The closing lines of a sweep.
pub fn conclusion(report: &Report) -> String {
    let mut out = String::new();
    match &report.saturation {
        Some(m) => {
            let _ = writeln!(
                out,
                "saturation: {}/s offered, {:.1}/s achieved, {} p50 {} ms, p99 {} ms (the highest step that held)",
                m.rate,
                m.achieved_per_second,
                report.latency.describe(),
                ms(m.p50_ms),
                ms(m.p99_ms)
            );
        }
        None => out.push_str("saturation: none — the first step already broke a limit (lower --from)\n"),
    }
    let _ = writeln!(out, "stopped: {}", report.stopped);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { p99_ms: 500.0, max_error_pct: 1.0, min_achieved_share: 0.9 };

    fn measured(rate: f64, achieved: f64, p99: f64, errors: u64, unfinished: u64) -> Measure {
        let offered = (rate * 10.0) as u64;
        Measure {
            rate,
            offered,
            sent_per_second: rate,
            achieved_per_second: achieved,
            p50_ms: Some(p99 / 2.0),
            p99_ms: Some(p99),
            errors,
            unfinished,
        }
    }

    fn held(measure: &Measure) -> bool {
        judge(measure, &LIMITS).is_empty()
    }

    #[test]
    fn a_step_within_every_limit_holds() {
        assert!(judge(&measured(100.0, 99.0, 480.0, 1, 0), &LIMITS).is_empty());
    }

    #[test]
    fn a_p99_over_the_limit_breaks_the_step() {
        assert_eq!(
            judge(&measured(100.0, 99.0, 501.0, 0, 0), &LIMITS),
            [Breach::P99 { p99_ms: 501.0, limit_ms: 500.0 }]
        );
    }

    #[test]
    fn errors_and_unfinished_checkouts_count_together_against_the_error_limit() {
        // 1000 offered: 6 refused + 5 unfinished is 1.1 %.
        let breaches = judge(&measured(100.0, 99.0, 100.0, 6, 5), &LIMITS);
        assert!(matches!(breaches.as_slice(), [Breach::Errors { error_pct, .. }] if (error_pct - 1.1).abs() < 1e-9));
        assert!(judge(&measured(100.0, 99.0, 100.0, 5, 5), &LIMITS).is_empty());
    }

    #[test]
    fn throughput_below_ninety_percent_of_the_offered_rate_breaks_the_step() {
        let breaches = judge(&measured(100.0, 89.9, 100.0, 0, 0), &LIMITS);
        assert!(matches!(breaches.as_slice(), [Breach::Throughput { .. }]), "{breaches:?}");
        assert!(judge(&measured(100.0, 90.0, 100.0, 0, 0), &LIMITS).is_empty());
    }

    #[test]
    fn a_step_where_nothing_finished_breaks_on_throughput_without_a_p99() {
        let mut m = measured(50.0, 0.0, 0.0, 0, 500);
        (m.p50_ms, m.p99_ms) = (None, None);
        let breaches = judge(&m, &LIMITS);
        assert_eq!(breaches.len(), 2, "{breaches:?}");
        assert!(!breaches.iter().any(|b| matches!(b, Breach::P99 { .. })));
    }

    #[test]
    fn saturation_is_the_last_step_that_held_before_the_first_break() {
        let steps = [
            measured(10.0, 10.0, 50.0, 0, 0),
            measured(20.0, 20.0, 80.0, 0, 0),
            measured(40.0, 39.0, 300.0, 0, 0),
            measured(80.0, 60.0, 2000.0, 0, 0),
            // A later step that happens to hold does not count.
            measured(160.0, 160.0, 50.0, 0, 0),
        ];
        assert_eq!(saturation(steps.iter().map(held)), Some(2));
    }

    #[test]
    fn there_is_no_saturation_point_when_the_first_step_broke() {
        assert_eq!(saturation([held(&measured(10.0, 10.0, 900.0, 0, 0))]), None);
        assert_eq!(saturation([]), None);
    }

    #[test]
    fn rates_rise_by_a_factor_or_a_step_up_to_the_maximum() {
        assert_eq!(rates(10.0, Growth::Factor(2.0), 80.0), [10.0, 20.0, 40.0, 80.0]);
        assert_eq!(rates(10.0, Growth::Factor(1.5), 40.0), [10.0, 15.0, 22.5, 33.75]);
        assert_eq!(rates(5.0, Growth::Step(5.0), 19.0), [5.0, 10.0, 15.0]);
        // A growth that does not grow stops after one step instead of looping.
        assert_eq!(rates(5.0, Growth::Factor(1.0), 100.0), [5.0]);
    }
}
