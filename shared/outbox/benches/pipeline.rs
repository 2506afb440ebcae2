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
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_precision_loss)]

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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let samples = usize::try_from(env_or("BENCH_SAMPLES", 1000)).unwrap();
    let backlog = usize::try_from(env_or("BENCH_BACKLOG", 5000)).unwrap();
    let mut kafka = TestKafka::with_topics(&[TOPIC], 6).await;
    kafka.settings.fetch_wait_max = Duration::from_millis(env_or(
        "BENCH_FETCH_WAIT_MS",
        kafka.settings.fetch_wait_max.as_millis().try_into().unwrap(),
    ));
    kafka.settings.linger =
        Duration::from_millis(env_or("BENCH_LINGER_MS", kafka.settings.linger.as_millis().try_into().unwrap()));
    let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR]).await;
    let publisher = kafka.publisher();
    let names = kafka.names();

    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let runtime = ConsumerRuntime::new(
        &kafka.settings,
        ConsumerSettings::new(format!("bench-{}", checkout_testkit::unique_suffix()), [TOPIC]),
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

    // Warm up connections and metadata.
    for _ in 0..50 {
        publisher
            .publish(&OutgoingRecord::for_envelope(&message(OrderId::from_uuid(Uuid::now_v7())), &names).unwrap())
            .await
            .unwrap();
        arrivals.recv().await.unwrap();
    }

    println!(
        "\nmessaging pipeline on the local stack (6 partitions, fetch.wait.max.ms={}, linger.ms={})\n",
        kafka.settings.fetch_wait_max.as_millis(),
        kafka.settings.linger.as_millis()
    );

    // 1. Produce → consume, one message in flight.
    let mut direct = Histogram::<u64>::new(3).unwrap();
    let mut acked = Histogram::<u64>::new(3).unwrap();
    for _ in 0..samples {
        let record = OutgoingRecord::for_envelope(&message(OrderId::from_uuid(Uuid::now_v7())), &names).unwrap();
        let sent = Instant::now();
        publisher.publish(&record).await.unwrap();
        observe(&mut acked, sent.elapsed());
        record_arrival(&mut direct, sent, &mut arrivals).await;
    }
    print_latency("produce -> broker ack (acks=all)", &acked);
    print_latency("produce -> consume (runtime)", &direct);

    // Consumer throughput: a pipelined burst.
    let burst: Vec<_> = (0..backlog)
        .map(|_| OutgoingRecord::for_envelope(&message(OrderId::from_uuid(Uuid::now_v7())), &names).unwrap())
        .collect();
    let started = Instant::now();
    let mut pending = Vec::with_capacity(burst.len());
    for record in &burst {
        pending.push(publisher.enqueue(record).await.unwrap());
    }
    for delivery in pending {
        delivery.await.unwrap();
    }
    let produced = started.elapsed();
    for _ in 0..backlog {
        arrivals.recv().await.unwrap();
    }
    let consumed = started.elapsed();
    println!(
        "{:<44} produce {:>7.0} msg/s   produce+consume {:>7.0} msg/s   (n={backlog})",
        "pipelined burst",
        backlog as f64 / produced.as_secs_f64(),
        backlog as f64 / consumed.as_secs_f64()
    );

    // 2. Commit → consume through the relay, woken by NOTIFY.
    let relay_shutdown = CancellationToken::new();
    let relay = OutboxRelay::new(db.pool.clone(), publisher.clone(), names.clone(), RelaySettings::default());
    let relay_task = tokio::spawn(relay.clone().run(relay_shutdown.clone()));
    let mut hop = Histogram::<u64>::new(3).unwrap();
    let mut commit = Histogram::<u64>::new(3).unwrap();
    for _ in 0..samples {
        let began = Instant::now();
        let mut tx = db.pool.begin().await.unwrap();
        checkout_outbox::enqueue(&mut tx, &message(OrderId::from_uuid(Uuid::now_v7()))).await.unwrap();
        tx.commit().await.unwrap();
        let committed = Instant::now();
        observe(&mut commit, committed - began);
        record_arrival(&mut hop, committed, &mut arrivals).await;
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
    relay_shutdown.cancel();
    relay_task.await.unwrap();

    // 3. Relay throughput over a committed backlog.
    for chunk in (0..backlog).collect::<Vec<_>>().chunks(500) {
        let mut tx = db.pool.begin().await.unwrap();
        for _ in chunk {
            checkout_outbox::enqueue(&mut tx, &message(OrderId::from_uuid(Uuid::now_v7()))).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let started = Instant::now();
    let published = relay.drain().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(published, backlog);
    println!(
        "{:<44} {:>7.0} msg/s   ({published} rows in {:.2} s, batches of {})",
        "outbox relay drain",
        published as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        RelaySettings::default().batch_size
    );
    for _ in 0..backlog {
        arrivals.recv().await.unwrap();
    }

    shutdown.cancel();
    consumer.await.unwrap().unwrap();
}

async fn record_arrival(
    histogram: &mut Histogram<u64>,
    since: Instant,
    arrivals: &mut mpsc::UnboundedReceiver<Instant>,
) {
    let arrived = arrivals.recv().await.unwrap();
    observe(histogram, arrived - since);
}
