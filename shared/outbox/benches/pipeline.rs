//! Measures the messaging path on the local stack and prints the numbers:
//!
//! 1. produce → consume latency through the consumer runtime (one message in
//!    flight at a time), and consumer throughput when records are pipelined;
//! 2. commit → consume latency through the outbox relay (woken by NOTIFY),
//!    which minus (1) is the latency the relay adds per hop;
//! 3. outbox relay throughput draining a backlog.
//!
//! Needs PostgreSQL and the broker (`deploy/native/stack.sh up`), then:
//! `cargo bench -p checkout-outbox --bench pipeline`

// Benchmark code: a failed unwrap aborts the run.
// Statistics are floats; money never is.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::float_arithmetic
)]

use std::time::{Duration, Instant};

use checkout_domain::OrderId;
use checkout_kafka::{ConsumerRuntime, ConsumerSettings, Handler, HandlerError, Incoming, OutgoingRecord};
use checkout_messages::payloads::saga::{SagaStepName, SagaStepRecorded, StepOutcome};
use checkout_messages::{Envelope, Message, MessageId, Source, Topic};
use checkout_outbox::{OutboxRelay, RelaySettings};
use checkout_testkit::{TestDatabase, TestKafka, eventually};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TOPIC: Topic = Topic::OrchestratorEvents;

/// Sizes and client tuning can be overridden: BENCH_SAMPLES, BENCH_BACKLOG,
/// BENCH_FETCH_WAIT_MS, BENCH_LINGER_MS.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn message(order: OrderId) -> Envelope {
    let payload = SagaStepRecorded {
        earlier: Vec::new(),
        at: None,
        finished: false,
        step: SagaStepName::CapturePayment,
        outcome: StepOutcome::Succeeded,
        attempt: 1,
        detail: None,
    };
    Envelope::first(
        MessageId::from_uuid(Uuid::now_v7()),
        Source::service("bench"),
        order,
        time::OffsetDateTime::now_utc(),
        Message::from(payload),
    )
}

/// Reports when each record reached the handler.
struct Arrivals(mpsc::UnboundedSender<Instant>);

impl Handler for Arrivals {
    async fn handle(&self, _: &Incoming) -> Result<(), HandlerError> {
        let _ = self.0.send(Instant::now());
        Ok(())
    }
}

fn print_latency(name: &str, histogram: &Histogram<u64>) {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<44} p50 {:>6.2} ms   p90 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   (n={})",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        histogram.max() as f64 / 1000.0,
        histogram.len()
    );
}

fn observe(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.record(u64::try_from(elapsed.as_micros()).unwrap()).unwrap();
}

struct Bench {
    kafka: TestKafka,
    db: TestDatabase,
    publisher: checkout_kafka::Publisher,
    names: checkout_kafka::TopicNames,
    arrivals: mpsc::UnboundedReceiver<Instant>,
    samples: usize,
    backlog: usize,
}

fn any_message() -> Envelope {
    message(OrderId::from_uuid(Uuid::now_v7()))
}

impl Bench {
    fn record(&self) -> OutgoingRecord {
        OutgoingRecord::for_envelope(&any_message(), &self.names).unwrap()
    }

    async fn arrival(&mut self) -> Instant {
        self.arrivals.recv().await.unwrap()
    }

    /// 1. Produce -> consume with one message in flight; returns that histogram.
    async fn produce_to_consume(&mut self) -> Histogram<u64> {
        let mut direct = Histogram::<u64>::new(3).unwrap();
        let mut acked = Histogram::<u64>::new(3).unwrap();
        for _ in 0..self.samples {
            let record = self.record();
            let sent = Instant::now();
            self.publisher.publish(&record).await.unwrap();
            observe(&mut acked, sent.elapsed());
            let arrived = self.arrival().await;
            observe(&mut direct, arrived - sent);
        }
        print_latency("produce -> broker ack (acks=all)", &acked);
        print_latency("produce -> consume (runtime)", &direct);
        direct
    }

    /// Throughput of a pipelined burst, produced and consumed.
    async fn burst(&mut self) {
        let burst: Vec<_> = (0..self.backlog).map(|_| self.record()).collect();
        let started = Instant::now();
        let mut pending = Vec::with_capacity(burst.len());
        for record in &burst {
            pending.push(self.publisher.enqueue(record).await.unwrap());
        }
        for delivery in pending {
            delivery.await.unwrap();
        }
        let produced = started.elapsed();
        for _ in 0..self.backlog {
            self.arrival().await;
        }
        let consumed = started.elapsed();
        let rate = |elapsed: Duration| self.backlog as f64 / elapsed.as_secs_f64();
        println!(
            "{:<44} produce {:>7.0} msg/s   produce+consume {:>7.0} msg/s   (n={})",
            "pipelined burst",
            rate(produced),
            rate(consumed),
            self.backlog
        );
    }

    /// 2. Commit -> consume through the relay, woken by NOTIFY.
    async fn relay_hop(&mut self, direct: &Histogram<u64>) {
        let shutdown = CancellationToken::new();
        let relay = OutboxRelay::new(
            self.db.pool.clone(),
            self.publisher.clone(),
            self.names.clone(),
            RelaySettings::default(),
        );
        let task = tokio::spawn(relay.run(shutdown.clone()));
        let mut hop = Histogram::<u64>::new(3).unwrap();
        let mut commit = Histogram::<u64>::new(3).unwrap();
        for _ in 0..self.samples {
            let began = Instant::now();
            let mut tx = self.db.pool.begin().await.unwrap();
            checkout_outbox::enqueue(&mut tx, &any_message()).await.unwrap();
            tx.commit().await.unwrap();
            let committed = Instant::now();
            observe(&mut commit, committed - began);
            let arrived = self.arrival().await;
            observe(&mut hop, arrived - committed);
        }
        print_latency("outbox write + commit", &commit);
        print_latency("commit -> consume (outbox relay hop)", &hop);
        let added = |q: f64| (hop.value_at_quantile(q) as f64 - direct.value_at_quantile(q) as f64) / 1000.0;
        println!(
            "{:<44} p50 {:>6.2} ms   p99 {:>6.2} ms",
            "relay adds per hop (hop - produce->consume)",
            added(0.5),
            added(0.99)
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    /// 3. Relay throughput over a committed backlog.
    async fn relay_drain(&mut self) {
        for chunk in (0..self.backlog).collect::<Vec<_>>().chunks(500) {
            let mut tx = self.db.pool.begin().await.unwrap();
            for _ in chunk {
                checkout_outbox::enqueue(&mut tx, &any_message()).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        let relay = OutboxRelay::new(
            self.db.pool.clone(),
            self.publisher.clone(),
            self.names.clone(),
            RelaySettings::default(),
        );
        let started = Instant::now();
        let published = relay.drain().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(published, self.backlog);
        println!(
            "{:<44} {:>7.0} msg/s   ({published} rows in {:.2} s, batches of {})",
            "outbox relay drain",
            published as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
            RelaySettings::default().batch_size
        );
        for _ in 0..self.backlog {
            self.arrival().await;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let samples = usize::try_from(env_or("BENCH_SAMPLES", 1000)).unwrap();
    let backlog = usize::try_from(env_or("BENCH_BACKLOG", 5000)).unwrap();
    let mut kafka = TestKafka::with_topics(&[TOPIC], 6).await;
    let default_ms = |d: Duration| u64::try_from(d.as_millis()).unwrap();
    kafka.settings.fetch_wait_max =
        Duration::from_millis(env_or("BENCH_FETCH_WAIT_MS", default_ms(kafka.settings.fetch_wait_max)));
    kafka.settings.linger = Duration::from_millis(env_or("BENCH_LINGER_MS", default_ms(kafka.settings.linger)));
    let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR]).await;
    let publisher = kafka.publisher();
    let names = kafka.names();

    let (arrived, arrivals) = mpsc::unbounded_channel();
    let group = format!("bench-{}", checkout_testkit::unique_suffix());
    let runtime = ConsumerRuntime::new(
        &kafka.settings,
        ConsumerSettings::new(group, [TOPIC]),
        publisher.clone(),
        Arrivals(arrived),
    )
    .unwrap();
    let status = runtime.status();
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(runtime.run(shutdown.clone()));
    eventually(Duration::from_secs(30), "the consumer to own partitions", || {
        let status = status.clone();
        async move { (status.assigned_partitions() > 0).then_some(()) }
    })
    .await;
    println!(
        "\nmessaging pipeline on the local stack (6 partitions, fetch.wait.max.ms={}, linger.ms={})\n",
        kafka.settings.fetch_wait_max.as_millis(),
        kafka.settings.linger.as_millis()
    );

    let mut bench = Bench { kafka, db, publisher, names, arrivals, samples, backlog };
    // Warm up connections and metadata.
    for _ in 0..50 {
        bench.publisher.publish(&bench.record()).await.unwrap();
        bench.arrival().await;
    }
    let direct = bench.produce_to_consume().await;
    bench.burst().await;
    bench.relay_hop(&direct).await;
    bench.relay_drain().await;

    shutdown.cancel();
    consumer.await.unwrap().unwrap();
    drop(bench.kafka);
}
