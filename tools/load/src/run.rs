//! One measured run — warm-up, measured window, settle — in an open or a
//! closed loop, against whichever [`Target`]. A single run is one of these;
//! a sweep is several in a row, sharing the target and the event feed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use checkout_domain::OrderId;
use tokio::sync::oneshot;

use crate::cpu::{self, Sample, Usage};
use crate::feed::{Event, Feed};
use crate::report::{self, Kind, RunInfo, Summary, Tally};
use crate::schedule::{Arrivals, Schedule};
use crate::target::{Placed, Target};

/// One checkout in flight.
pub struct Pending {
    pub scheduled: Instant,
    pub kind: Kind,
    pub measured: bool,
    pub terminal: bool,
    /// Told when the saga has finished (closed loop).
    pub done: Option<oneshot::Sender<()>>,
}

/// Everything the generator knows, behind one lock.
pub struct State {
    pub pending: HashMap<OrderId, Pending>,
    /// Events for orders whose `202` has not been seen yet.
    pub early: HashMap<OrderId, Vec<(Event, Instant)>>,
    pub tally: Tally,
}

pub type Shared = Arc<Mutex<State>>;

pub fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    pub fn apply(&mut self, order: OrderId, event: Event, at: Instant) {
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
                    self.tally.finished(measured.then_some(since), at);
                    if let Some(done) = pending.done.take() {
                        let _ = done.send(());
                    }
                }
            }
            Event::Confirmed | Event::Cancelled => {}
        }
    }

    /// Starts a new run: what is still in flight from an earlier one is no
    /// longer measured, and the counts start again.
    fn begin(&mut self, tally: Tally) {
        for pending in self.pending.values_mut() {
            pending.measured = false;
        }
        self.tally = tally;
    }

    fn measured_in_flight(&self) -> usize {
        self.pending.values().filter(|p| p.measured).count()
    }
}

/// How checkouts are sent.
#[derive(Debug, Clone, Copy)]
pub enum Loop {
    /// At `rate` per second, whatever the system does.
    Open { rate: f64, arrivals: Arrivals },
    /// `clients` callers, each placing its next checkout once the last finished.
    Closed { clients: usize },
}

/// One run's shape.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub pace: Loop,
    pub warmup: Duration,
    pub duration: Duration,
    /// The longest wait, after the last checkout is sent, for the rest.
    pub settle: Duration,
    pub seed: u64,
    /// Print a line every second.
    pub progress: bool,
}

/// Percent of checkouts of each kind that fail on purpose.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub declined: u32,
    pub out_of_stock: u32,
}

impl Mix {
    fn pick(self, rng: &mut fastrand::Rng) -> Kind {
        let roll = rng.u32(0..100);
        if roll < self.declined {
            Kind::Declined
        } else if roll < self.declined + self.out_of_stock {
            Kind::OutOfStock
        } else {
            Kind::Confirmed
        }
    }
}

/// What every run of one invocation shares.
pub struct Bench {
    pub target: Arc<Target>,
    pub state: Shared,
    pub mix: Mix,
    /// Processes whose CPU time is measured over the window.
    pub cpu: cpu::Watch,
    feeding: Option<tokio::task::JoinHandle<()>>,
}

impl Bench {
    /// Sets up the target's completion feed, if it has one.
    pub fn start(target: Target, kafka: &str, prefix: &str, mix: Mix, cpu: cpu::Watch) -> anyhow::Result<Self> {
        let now = Instant::now();
        let state: Shared = Arc::new(Mutex::new(State {
            pending: HashMap::new(),
            early: HashMap::new(),
            tally: Tally::new((now, now)).context("creating the histograms")?,
        }));
        let feeding = if target.needs_feed() {
            let feed = Feed::start(kafka, prefix)?;
            let state = Arc::clone(&state);
            Some(tokio::spawn(async move {
                loop {
                    match feed.next().await {
                        Ok((order, event, at)) => lock(&state).apply(order, event, at),
                        Err(error) => eprintln!("completion feed: {error:#}"),
                    }
                }
            }))
        } else {
            None
        };
        Ok(Self { target: Arc::new(target), state, mix, cpu, feeding })
    }

    /// One run: warm-up, the measured window, then up to `settle` for the
    /// measured checkouts still in flight.
    pub async fn run(&self, plan: &Plan) -> anyhow::Result<Summary> {
        let expected = match plan.pace {
            Loop::Open { rate, .. } => (rate * (plan.warmup + plan.duration).as_secs_f64()).ceil() as u64,
            Loop::Closed { .. } => 0,
        };
        self.target.prepare(expected).await?;
        let start = Instant::now();
        let measure_from = start + plan.warmup;
        let stop_at = measure_from + plan.duration;
        let give_up = stop_at + plan.settle;
        lock(&self.state).begin(Tally::new((measure_from, stop_at)).context("creating the histograms")?);
        let progress =
            plan.progress.then(|| tokio::spawn(report::progress(Arc::clone(&self.state), start, measure_from)));
        let cpu = self.sample_cpu(measure_from, stop_at);
        let window = Window { start, measure_from, stop_at, give_up };
        let mode = match plan.pace {
            Loop::Open { rate, arrivals } => {
                self.open_loop(rate, arrivals, plan.seed, window).await;
                format!("open loop, {rate} checkouts/s ({arrivals:?})")
            }
            Loop::Closed { clients } => {
                self.closed_loop(clients, plan.seed, window).await;
                format!("closed loop, {clients} client{}", if clients == 1 { "" } else { "s" })
            }
        };
        while Instant::now() < give_up && lock(&self.state).measured_in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(progress) = progress {
            progress.abort();
        }
        let cpu = match cpu {
            Some(task) => task.await.ok(),
            None => None,
        };
        let state = lock(&self.state);
        let cpu = cpu.map(|(before, after, tick)| {
            Usage::between(&before, &after, &self.cpu, state.tally.completed_in_window(), tick)
        });
        let info = RunInfo { target: self.target.describe(), mode, seed: plan.seed };
        Ok(state.tally.summary(&info, state.measured_in_flight(), cpu))
    }

    /// Samples the CPU of what `cpu` names when the window opens and closes.
    fn sample_cpu(&self, from: Instant, to: Instant) -> Option<tokio::task::JoinHandle<(Sample, Sample, Duration)>> {
        if self.cpu.is_empty() {
            return None;
        }
        let watch = self.cpu.clone();
        Some(tokio::spawn(async move {
            let tick = Duration::from_secs(1) / u32::try_from(cpu::ticks_per_second()).unwrap_or(100);
            tokio::time::sleep_until(from.into()).await;
            let before = Sample::take(&watch);
            tokio::time::sleep_until(to.into()).await;
            (before, Sample::take(&watch), tick)
        }))
    }

    async fn open_loop(&self, rate: f64, arrivals: Arrivals, seed: u64, window: Window) {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x00c0_ffee);
        let mut tasks = Vec::new();
        for due in Schedule::new(arrivals, rate, seed) {
            let scheduled = window.start + due;
            if scheduled >= window.stop_at {
                break;
            }
            tokio::time::sleep_until(scheduled.into()).await;
            let kind = self.mix.pick(&mut rng);
            let measured = scheduled >= window.measure_from;
            lock(&self.state).tally.offered(measured);
            let (target, state) = (Arc::clone(&self.target), Arc::clone(&self.state));
            tasks.push(tokio::spawn(async move {
                target.place(&state, kind, scheduled, measured, window.give_up).await;
            }));
        }
        futures::future::join_all(tasks).await;
    }

    async fn closed_loop(&self, clients: usize, seed: u64, window: Window) {
        let tasks = (0..clients).map(|client| {
            let (target, state, mix) = (Arc::clone(&self.target), Arc::clone(&self.state), self.mix);
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(seed ^ client as u64);
                while Instant::now() < window.stop_at {
                    let scheduled = Instant::now();
                    let measured = scheduled >= window.measure_from;
                    lock(&state).tally.offered(measured);
                    let kind = mix.pick(&mut rng);
                    match target.place(&state, kind, scheduled, measured, window.give_up).await {
                        Placed::Following(finished) => {
                            let _ = tokio::time::timeout_at(window.give_up.into(), finished).await;
                        }
                        Placed::Done => {}
                        Placed::Failed => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        });
        futures::future::join_all(tasks).await;
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(feeding) = self.feeding.take() {
            feeding.abort();
        }
    }
}

/// A run's moments.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    stop_at: Instant,
    give_up: Instant,
}
