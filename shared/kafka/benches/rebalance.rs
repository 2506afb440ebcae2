//! The pause a rebalance causes, on the local broker: one member consumes a
//! steady stream over six partitions, a second member joins, and the bench
//! prints how long each partition went without a record being handled.
//! Run once per assignment strategy (eager `range` and `cooperative-sticky`).
//!
//! `cargo bench -p checkout-kafka --bench rebalance`
//! Environment: `BENCH_RATE` (records/s, default 300), `BENCH_HANDLE_MS`
//! (time each record takes to handle, default 0), `BENCH_STRATEGIES`
//! (comma-separated, default `range,cooperative-sticky`).

// Benchmark code: a failed unwrap aborts the run; statistics are floats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_precision_loss)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checkout_domain::OrderId;
use checkout_kafka::{ConsumerRuntime, ConsumerSettings, Handler, HandlerError, Incoming, OutgoingRecord};
use checkout_messages::payloads::saga::{SagaStepName, SagaStepRecorded, StepOutcome};
use checkout_messages::{Envelope, Message, MessageId, Source, Topic};
use checkout_testkit::{TestKafka, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TOPIC: Topic = Topic::OrchestratorEvents;
const PARTITIONS: i32 = 6;

/// A record handled: its partition, the member that handled it, and when.
type Handled = (i32, &'static str, Instant);

/// When each partition's records were handled, and by which member.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<Handled>>>);

struct Member {
    name: &'static str,
    timeline: Timeline,
    work: Duration,
}

impl Handler for Member {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        tokio::time::sleep(self.work).await;
        self.timeline.0.lock().unwrap().push((message.position.partition, self.name, Instant::now()));
        Ok(())
    }
}

/// How long each record takes to handle (`BENCH_HANDLE_MS`, default 0).
fn handler_work() -> Duration {
    Duration::from_millis(std::env::var("BENCH_HANDLE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn record(names: &checkout_kafka::TopicNames) -> OutgoingRecord {
    let payload = SagaStepRecorded {
        earlier: Vec::new(),
        at: None,
        finished: false,
        step: SagaStepName::ConfirmOrder,
        outcome: StepOutcome::Started,
        attempt: 1,
        detail: None,
    };
    let envelope = Envelope::first(
        MessageId::from_uuid(Uuid::now_v7()),
        Source::service("bench"),
        OrderId::from_uuid(Uuid::now_v7()),
        time::OffsetDateTime::now_utc(),
        Message::from(payload),
    );
    OutgoingRecord::for_envelope(&envelope, names).unwrap()
}

fn start(kafka: &TestKafka, strategy: &str, group: &str, name: &'static str, timeline: &Timeline) -> CancellationToken {
    let mut settings = kafka.settings.clone();
    strategy.clone_into(&mut settings.assignment_strategy);
    let runtime = ConsumerRuntime::new(
        &settings,
        ConsumerSettings::new(group, [TOPIC]),
        kafka.publisher(),
        Member { name, timeline: timeline.clone(), work: handler_work() },
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(runtime.run(shutdown.clone()));
    shutdown
}

/// The longest time between two handled records of each partition, from
/// `from` on (a partition that goes quiet for good counts until `until`).
fn gaps(events: &[Handled], from: Instant, until: Instant) -> BTreeMap<i32, Duration> {
    let mut last: BTreeMap<i32, Instant> = (0..PARTITIONS).map(|p| (p, from)).collect();
    let mut longest: BTreeMap<i32, Duration> = BTreeMap::new();
    for &(partition, _, at) in events.iter().filter(|(_, _, at)| *at >= from) {
        let gap = at - last[&partition];
        longest.entry(partition).and_modify(|g| *g = (*g).max(gap)).or_insert(gap);
        last.insert(partition, at);
    }
    for (partition, at) in last {
        let gap = until - at;
        longest.entry(partition).and_modify(|g| *g = (*g).max(gap)).or_insert(gap);
    }
    longest
}

async fn measure(strategy: &str, rate: u64) {
    let kafka = TestKafka::with_topics(&[TOPIC], PARTITIONS).await;
    let group = format!("rebalance-{}", checkout_testkit::unique_suffix());
    let timeline = Timeline::default();
    let publisher = kafka.publisher();
    let names = kafka.names();
    let stop_producing = CancellationToken::new();
    let producing = {
        let stop = stop_producing.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            while !stop.is_cancelled() {
                tick.tick().await;
                publisher.publish(&record(&names)).await.unwrap();
            }
        })
    };

    let first = start(&kafka, strategy, &group, "first", &timeline);
    eventually(Duration::from_secs(30), "the first member to serve every partition", || async {
        let events = timeline.0.lock().unwrap();
        let served: std::collections::BTreeSet<i32> = events.iter().map(|(p, _, _)| *p).collect();
        (served.len() == usize::try_from(PARTITIONS).unwrap()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let joined = Instant::now();
    let second = start(&kafka, strategy, &group, "second", &timeline);
    eventually(Duration::from_secs(60), "the second member to handle records", || async {
        timeline.0.lock().unwrap().iter().any(|(_, member, _)| *member == "second").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let until = Instant::now();
    stop_producing.cancel();
    producing.await.unwrap();

    let events = timeline.0.lock().unwrap().clone();
    let moved: std::collections::BTreeSet<i32> =
        events.iter().filter(|(_, member, _)| *member == "second").map(|(p, _, _)| *p).collect();
    let longest = gaps(&events, joined, until);
    let kept_max = longest.iter().filter(|(p, _)| !moved.contains(p)).map(|(_, g)| *g).max().unwrap_or_default();
    let moved_max = longest.iter().filter(|(p, _)| moved.contains(p)).map(|(_, g)| *g).max().unwrap_or_default();
    println!(
        "{strategy:>20}: partitions that stayed: longest pause {:>6} ms | partitions that moved ({}): longest pause {:>6} ms",
        kept_max.as_millis(),
        moved.len(),
        moved_max.as_millis(),
    );
    first.cancel();
    second.cancel();
}

fn main() {
    let rate: u64 = std::env::var("BENCH_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let strategies = std::env::var("BENCH_STRATEGIES").unwrap_or_else(|_| "range,cooperative-sticky".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!(
        "\nrebalance pause when a second member joins ({PARTITIONS} partitions, {rate} records/s, {} ms per record)\n",
        handler_work().as_millis()
    );
    runtime.block_on(async {
        for strategy in strategies.split(',') {
            measure(strategy.trim(), rate).await;
        }
    });
}
