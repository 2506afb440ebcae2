//! Records a partition has ready are handed to the handler in batches
//! (different orders, and the records waiting behind them); each order's
//! records still go in order, and a batch that fails is handled record by
//! record so only the bad one is dead-lettered. With `concurrent_batches`,
//! the ready records of several partitions go to the handler together.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkout_domain::OrderId;
use checkout_kafka::{ConsumerRuntime, DeadLetterHeader, Handler, HandlerError, Incoming, RecordOrdering};
use checkout_testkit::{TestKafka, eventually, header};
use common::{TOPIC, fast_retries, publish_numbered, sequence_number, settings};
use rdkafka::Message as _;
use tokio_util::sync::CancellationToken;

const RECORDS: u32 = 300;
const MAX_BATCH: usize = 16;
/// The handler rejects this record, alone or in a batch.
const POISON: u32 = 77;

/// The records one call handled: (order, sequence number).
type Batch = Vec<(OrderId, u32)>;

/// Records what it handled, batch by batch, in the order it handled them.
#[derive(Clone, Default)]
struct Batching {
    /// Every successful call, with the records it handled (order, sequence number).
    calls: Arc<Mutex<Vec<Batch>>>,
    /// The partitions of each successful call's records.
    partitions: Arc<Mutex<Vec<HashSet<i32>>>>,
}

impl Batching {
    fn handled(&self) -> Vec<(OrderId, u32)> {
        self.calls.lock().unwrap().iter().flatten().copied().collect()
    }
}

fn rejected() -> HandlerError {
    HandlerError::permanent("this record can never be handled")
}

impl Handler for Batching {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(message)).await
    }

    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        // Slow enough that records pile up while the single place in flight is taken.
        tokio::time::sleep(Duration::from_millis(15)).await;
        if messages.iter().any(|message| sequence_number(message) == POISON) {
            return Err(rejected());
        }
        let batch = messages.iter().map(|message| (message.envelope.subject, sequence_number(message))).collect();
        self.calls.lock().unwrap().push(batch);
        self.partitions.lock().unwrap().push(messages.iter().map(|message| message.position.partition).collect());
        Ok(())
    }
}

/// How the consumer is set for batches.
#[derive(Clone, Copy)]
struct Shape {
    ordering: RecordOrdering,
    /// `ConsumerSettings::concurrent_batches`.
    concurrent_batches: usize,
    max_in_flight: usize,
    /// `ConsumerSettings::partition_buffer`, when not the default.
    partition_buffer: Option<usize>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_key_ordering_ready_orders_are_batched_each_in_order_and_a_bad_record_is_dead_lettered_alone() {
    let shape =
        Shape { ordering: RecordOrdering::Key, concurrent_batches: 0, max_in_flight: 1, partition_buffer: None };
    batches_keep_order_and_isolate_a_bad_record(shape, "batches-by-key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_partition_ordering_a_partitions_next_records_are_batched_in_order() {
    let shape =
        Shape { ordering: RecordOrdering::Partition, concurrent_batches: 0, max_in_flight: 1, partition_buffer: None };
    batches_keep_order_and_isolate_a_bad_record(shape, "batches-by-partition").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_partitions_share_calls_each_order_in_order_and_a_bad_record_is_dead_lettered_alone() {
    // Each partition holds at most 5 records, so its job is at most 5 and
    // the jobs of the other partitions, waiting while a call runs, fit in
    // the next call together (a job of 16 would fill a call on its own).
    let shape =
        Shape { ordering: RecordOrdering::Key, concurrent_batches: 1, max_in_flight: 8, partition_buffer: Some(5) };
    let handler = batches_keep_order_and_isolate_a_bad_record(shape, "batches-coalesced").await;
    let partitions = handler.partitions.lock().unwrap().clone();
    let widest = partitions.iter().map(HashSet::len).max().unwrap_or(0);
    assert!(widest > 1, "no call ever had the records of more than one partition: {partitions:?}");
}

async fn batches_keep_order_and_isolate_a_bad_record(shape: Shape, group: &str) -> Batching {
    let kafka = TestKafka::with_topics(&[TOPIC], 3).await;
    let handler = Batching::default();
    let defaults = settings(group, fast_retries());
    let group = checkout_kafka::ConsumerSettings {
        ordering: shape.ordering,
        max_in_flight: shape.max_in_flight,
        max_batch: MAX_BATCH,
        concurrent_batches: shape.concurrent_batches,
        partition_buffer: shape.partition_buffer.unwrap_or(defaults.partition_buffer),
        ..defaults
    };
    let runtime = ConsumerRuntime::new(&kafka.settings, group, kafka.publisher(), handler.clone()).unwrap();
    let status = runtime.status();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runtime.run(shutdown.clone()));
    eventually(Duration::from_secs(30), "the consumer to be assigned partitions", || {
        let assigned = status.assigned_partitions();
        async move { (assigned > 0).then_some(()) }
    })
    .await;

    publish_numbered(&kafka, 30, RECORDS).await;

    let handled = eventually(Duration::from_secs(60), "every good record to be handled", || {
        let handled = handler.handled();
        async move { (handled.len() >= RECORDS as usize - 1).then_some(handled) }
    })
    .await;
    let dead = kafka.read(&kafka.names().dead_letter(TOPIC), 1, Duration::from_secs(10)).await;
    assert_eq!(header(&dead[0], DeadLetterHeader::ERROR_CLASS), Some("rejected"));
    let dead_letter = checkout_messages::decode(dead[0].payload().unwrap()).unwrap();
    match dead_letter.envelope.payload {
        checkout_messages::Message::SagaStepRecorded(step) => assert_eq!(step.attempt, POISON, "only the bad record"),
        other => panic!("unexpected dead letter {other:?}"),
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let calls = handler.calls.lock().unwrap().clone();
    let largest = calls.iter().map(Vec::len).max().unwrap_or(0);
    assert!(largest > 1, "records that were ready together were never batched");
    assert!(largest <= MAX_BATCH, "a batch of {largest} is over the bound of {MAX_BATCH}");
    let mut seen = HashSet::new();
    let mut last: HashMap<OrderId, u32> = HashMap::new();
    for &(order, seq) in &handled {
        assert!(seen.insert(seq), "record {seq} handled twice");
        let previous = last.insert(order, seq).unwrap_or(0);
        assert!(seq > previous, "order {order}: record {seq} handled after {previous}");
    }
    let expected: HashSet<u32> = (1..=RECORDS).filter(|&seq| seq != POISON).collect();
    assert_eq!(seen, expected, "every good record handled once, the poison one never");
    handler
}
