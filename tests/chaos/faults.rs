//! The faults, at seeded random instants, and how they really happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use checkout_testkit::{LocalBroker, LocalPostgres};

use crate::Form;
use crate::support::stack::{SERVICES, Stack};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fault {
    Kill { service: &'static str, instance: usize },
    Broker,
    Database,
}

impl Fault {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::Kill { .. } => "service instance SIGKILLed",
            Self::Broker => "broker SIGKILLed",
            Self::Database => "PostgreSQL stopped",
        }
    }
}

/// A fault as it happened.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    pub(crate) fault: Fault,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

/// The faults, at seeded random instants within the load, in order.
pub(crate) fn schedule(form: &Form) -> Vec<(Duration, Fault)> {
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
pub(crate) async fn inject(stack: Arc<Stack>, form: Form, began: Instant) -> Vec<Window> {
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
