use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::Message as _;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::context::{PartitionKey, RebalanceEvent};
use super::process::{Outcome, process_record};
use super::{GroupConsumer, Handler, Shared};

/// The per-partition workers of one consumer.
pub(crate) struct Workers<H> {
    shared: Arc<Shared<H>>,
    consumer: Arc<GroupConsumer>,
    active: HashMap<PartitionKey, Worker>,
    /// Stopped workers that may still be finishing a record; a successor for
    /// the same partition waits for them.
    retiring: HashMap<PartitionKey, JoinHandle<()>>,
    tracker: TaskTracker,
}

struct Worker {
    records: mpsc::UnboundedSender<OwnedMessage>,
    backlog: Arc<Backlog>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

/// The records handed to one partition's worker and not yet finished, and
/// whether fetching the partition is paused because there are too many.
///
/// The queue itself is unbounded so the dispatcher never waits; its length
/// is bounded by pausing at `high` records (a few more, already fetched when
/// the pause takes effect, may follow) and resuming at `high / 2`.
struct Backlog {
    topic: String,
    partition: i32,
    high: usize,
    queued: AtomicUsize,
    /// Held while pausing or resuming, so the two never cross.
    paused: Mutex<bool>,
}

impl Backlog {
    fn partition_list(&self) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        // The offset is ignored by pause and resume.
        let _ = list.add_partition_offset(&self.topic, self.partition, Offset::Invalid);
        list
    }

    /// After a record was queued: pause fetching when the backlog is full.
    fn added(&self, consumer: &GroupConsumer) {
        let Ok(mut paused) = self.paused.lock() else { return };
        if !*paused && self.queued.load(Ordering::Acquire) >= self.high {
            match consumer.pause(&self.partition_list()) {
                Ok(()) => {
                    *paused = true;
                    metrics::gauge!("checkout_consumer_paused_partitions").increment(1);
                    tracing::debug!(kafka.topic = %self.topic, kafka.partition = self.partition,
                        backlog = self.high, "partition paused: its worker is behind");
                }
                Err(error) => tracing::warn!(%error, kafka.topic = %self.topic, kafka.partition = self.partition,
                    "could not pause partition"),
            }
        }
    }

    /// After a record was finished: resume fetching once half the backlog is done.
    fn finished(&self, consumer: &GroupConsumer) {
        let left = self.queued.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        if left > self.high / 2 {
            return;
        }
        let Ok(mut paused) = self.paused.lock() else { return };
        if *paused && self.queued.load(Ordering::Acquire) <= self.high / 2 {
            // Fails only if the partition was revoked meanwhile; its next owner fetches it.
            let _ = consumer.resume(&self.partition_list());
            *paused = false;
            metrics::gauge!("checkout_consumer_paused_partitions").decrement(1);
        }
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        if self.paused.get_mut().is_ok_and(|paused| *paused) {
            metrics::gauge!("checkout_consumer_paused_partitions").decrement(1);
        }
    }
}

impl<H: Handler> Workers<H> {
    pub(crate) fn new(shared: Arc<Shared<H>>, consumer: Arc<GroupConsumer>) -> Self {
        Self { shared, consumer, active: HashMap::new(), retiring: HashMap::new(), tracker: TaskTracker::new() }
    }

    pub(crate) fn apply(&mut self, event: RebalanceEvent) {
        self.retiring.retain(|_, handle| !handle.is_finished());
        let RebalanceEvent::Revoked(partitions) = event;
        for key in partitions {
            if let Some(worker) = self.active.remove(&key) {
                worker.stop.cancel();
                self.retiring.insert(key, worker.handle);
            }
        }
    }

    /// Hands a record to the worker of its partition (starting one if needed)
    /// without waiting; pauses the partition when its backlog is full.
    pub(crate) fn dispatch(&mut self, record: OwnedMessage) {
        let key = (record.topic().to_owned(), record.partition());
        let consumer = Arc::clone(&self.consumer);
        let worker = self.worker_for(&key);
        worker.backlog.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError(_)) = worker.records.send(record) {
            // The worker was stopped by a rebalance; the partition's next owner
            // fetches the record again.
            worker.backlog.queued.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        worker.backlog.added(&consumer);
    }

    fn worker_for(&mut self, key: &PartitionKey) -> &Worker {
        let running = self.active.get(key).is_some_and(|worker| !worker.records.is_closed());
        if !running {
            let previous = self.active.remove(key).map(|worker| worker.handle).or_else(|| self.retiring.remove(key));
            let (records, receiver) = mpsc::unbounded_channel();
            let backlog = Arc::new(Backlog {
                topic: key.0.clone(),
                partition: key.1,
                high: self.shared.settings.partition_buffer.max(2),
                queued: AtomicUsize::new(0),
                paused: Mutex::new(false),
            });
            let stop = CancellationToken::new();
            let handle = self.tracker.spawn(run_worker(
                Arc::clone(&self.shared),
                Arc::clone(&self.consumer),
                receiver,
                Arc::clone(&backlog),
                stop.clone(),
                previous,
            ));
            self.active.insert(key.clone(), Worker { records, backlog, stop, handle });
        }
        &self.active[key]
    }

    /// Stops every worker after the record it is processing, and waits for them.
    pub(crate) async fn stop_all(self) {
        for worker in self.active.values() {
            worker.stop.cancel();
        }
        drop(self.active);
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn run_worker<H: Handler>(
    shared: Arc<Shared<H>>,
    consumer: Arc<GroupConsumer>,
    mut records: mpsc::UnboundedReceiver<OwnedMessage>,
    backlog: Arc<Backlog>,
    stop: CancellationToken,
    previous: Option<JoinHandle<()>>,
) {
    if let Some(previous) = previous {
        // A panic in the predecessor was already reported by the runtime.
        let _ = previous.await;
    }
    loop {
        let record = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            record = records.recv() => match record {
                Some(record) => record,
                None => return,
            },
        };
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            permit = shared.permits.acquire() => match permit {
                Ok(permit) => permit,
                Err(_closed) => return,
            },
        };
        let outcome = process_record(&shared, &record, &stop).await;
        drop(permit);
        match outcome {
            Outcome::Done => {
                if let Some(produced) = record
                    .timestamp()
                    .to_millis()
                    .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
                {
                    shared.status.record_progress(record.topic(), record.partition(), produced);
                }
                if let Err(error) = consumer.store_offset(record.topic(), record.partition(), record.offset()) {
                    // The partition was revoked meanwhile: its next owner redelivers
                    // the record, and the inbox makes the repeat harmless.
                    tracing::debug!(%error, kafka.topic = record.topic(), kafka.partition = record.partition(),
                        kafka.offset = record.offset(), "offset not stored");
                }
            }
            Outcome::Abandoned => return,
        }
        backlog.finished(&consumer);
    }
}
