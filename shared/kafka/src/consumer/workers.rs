use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::Message as _;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::coalesce::{JobOutcomes, process_job};
use super::context::{PartitionKey, RebalanceEvent};
use super::lanes::Lanes;
use super::process::{Outcome, process_records};
use super::{GroupConsumer, Handler, Shared};
use crate::RecordOrdering;

/// The per-partition workers of one consumer.
pub(crate) struct Workers<H> {
    shared: Arc<Shared<H>>,
    consumer: Arc<GroupConsumer>,
    active: HashMap<PartitionKey, Worker>,
    /// Stopped workers that may still be finishing a record; a successor for
    /// the same partition waits for them.
    retiring: HashMap<PartitionKey, JoinHandle<()>>,
    tracker: TaskTracker,
    /// Set when the consumer shuts down (rather than losing partitions).
    closing: Arc<AtomicBool>,
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
    group: String,
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
                    metrics::gauge!("checkout_consumer_paused_partitions", "group" => self.group.clone()).increment(1);
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
            metrics::gauge!("checkout_consumer_paused_partitions", "group" => self.group.clone()).decrement(1);
        }
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        if self.paused.get_mut().is_ok_and(|paused| *paused) {
            metrics::gauge!("checkout_consumer_paused_partitions", "group" => self.group.clone()).decrement(1);
        }
    }
}

impl<H: Handler> Workers<H> {
    pub(crate) fn new(shared: Arc<Shared<H>>, consumer: Arc<GroupConsumer>) -> Self {
        Self {
            shared,
            consumer,
            active: HashMap::new(),
            retiring: HashMap::new(),
            tracker: TaskTracker::new(),
            closing: Arc::default(),
        }
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
                group: self.shared.settings.group_id.clone(),
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
                Arc::clone(&self.closing),
                previous,
            ));
            self.active.insert(key.clone(), Worker { records, backlog, stop, handle });
        }
        &self.active[key]
    }

    /// Stops every worker after the records it is processing (and those
    /// before the last of them, see `run_worker`), and waits for them.
    pub(crate) async fn stop_all(self) {
        self.closing.store(true, Ordering::Release);
        for worker in self.active.values() {
            worker.stop.cancel();
        }
        drop(self.active);
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Processes one partition's records: records of different keys at the
/// same time (as many as the consumer's permits allow), records of one key
/// in order; stores the offset of the contiguous run of finished records.
async fn run_worker<H: Handler>(
    shared: Arc<Shared<H>>,
    consumer: Arc<GroupConsumer>,
    mut records: mpsc::UnboundedReceiver<OwnedMessage>,
    backlog: Arc<Backlog>,
    stop: CancellationToken,
    closing: Arc<AtomicBool>,
    previous: Option<JoinHandle<()>>,
) {
    if let Some(previous) = previous {
        // A panic in the predecessor was already reported by the runtime.
        let _ = previous.await;
    }
    let mut partition = Partition {
        topic: backlog.topic.clone(),
        number: backlog.partition,
        lanes: Lanes::default(),
        ready: VecDeque::new(),
        running: JoinSet::new(),
        oldest_reported: None,
    };
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(joined) = partition.running.join_next() => {
                partition.finished_all(&shared, &consumer, &backlog, joined);
            }
            permit = Arc::clone(&shared.permits).acquire_owned(), if !partition.ready.is_empty() => {
                let Ok(permit) = permit else { break };
                let records = partition.next_batch(&shared);
                partition.start(&shared, &stop, permit, records);
            }
            record = records.recv() => match record {
                Some(record) => partition.admit(&shared, record),
                None => break,
            },
        }
    }
    // Stopped: what is running finishes (a record that is only waiting to be
    // retried gives up at once) and its offset is stored if it can be. On
    // shutdown the records received before the last finished one are
    // processed too, so that the stored offset covers every record processed
    // and the next member is handed nothing this one handled: at most
    // `partition_buffer` records, and a record that gives up ends it. Not on
    // revocation: offsets stored after it are lost anyway, and the new owner
    // is waiting.
    let mut close_gaps = closing.load(Ordering::Acquire);
    loop {
        while close_gaps
            && let Some(end) = partition.lanes.last_finished_behind_gap()
            && let Some(index) = partition.ready.iter().position(|record| record.offset() < end)
            && let Some(record) = partition.ready.remove(index)
        {
            let Ok(permit) = Arc::clone(&shared.permits).acquire_owned().await else { break };
            partition.start(&shared, &stop, permit, vec![record]);
        }
        let Some(joined) = partition.running.join_next().await else { break };
        close_gaps &= partition.finished_all(&shared, &consumer, &backlog, joined);
    }
}

/// The lane a record waits in: its key, or one lane for the whole partition.
fn lane(record: &OwnedMessage, ordering: RecordOrdering) -> Option<Vec<u8>> {
    match ordering {
        RecordOrdering::Key => record.key().map(<[u8]>::to_vec),
        RecordOrdering::Partition => None,
    }
}

/// What a partition's worker holds.
struct Partition {
    topic: String,
    number: i32,
    lanes: Lanes<Option<Vec<u8>>, OwnedMessage>,
    /// Records that may start, waiting for a permit.
    ready: VecDeque<OwnedMessage>,
    /// Each task processes one record or a batch (see `next_batch`).
    running: JoinSet<JobOutcomes>,
    /// What the status was last told of the oldest unfinished record.
    oldest_reported: Option<i64>,
}

impl Partition {
    fn admit<H>(&mut self, shared: &Shared<H>, record: OwnedMessage) {
        let key = lane(&record, shared.settings.ordering);
        let (offset, produced) = (record.offset(), record.timestamp().to_millis());
        if let Some(record) = self.lanes.admit(key, offset, produced, record) {
            self.ready.push_back(record);
        }
        self.report_oldest(shared);
    }

    /// Tells the status when the oldest unfinished record was produced, if
    /// that changed (it changes when the front of the partition moves, not
    /// with every record).
    fn report_oldest<H>(&mut self, shared: &Shared<H>) {
        let oldest = self.lanes.oldest_unfinished_ms();
        if oldest != self.oldest_reported {
            shared.status.record_oldest_unfinished(&self.topic, self.number, oldest);
            self.oldest_reported = oldest;
        }
    }

    /// Starts processing `records` (one, or a batch), holding `permit` until they are finished.
    fn start<H: Handler>(
        &mut self,
        shared: &Arc<Shared<H>>,
        stop: &CancellationToken,
        permit: OwnedSemaphorePermit,
        records: Vec<OwnedMessage>,
    ) {
        let (shared, stop) = (Arc::clone(shared), stop.clone());
        self.running.spawn(async move {
            let outcomes = match &shared.coalescer {
                Some(coalescer) => process_job(&shared, coalescer, records, stop).await,
                None => Ok(process_records(&shared, records, &stop).await),
            };
            drop(permit);
            outcomes
        });
    }

    /// The records to process next with one permit: the ready ones (their
    /// keys' next records), up to `max_batch`, then the records waiting
    /// behind them in their keys' order while there is room (with partition
    /// ordering, the partition's next records).
    fn next_batch<H>(&mut self, shared: &Shared<H>) -> Vec<OwnedMessage> {
        let limit = shared.settings.max_batch.max(1);
        let mut records: Vec<OwnedMessage> = self.ready.drain(..self.ready.len().min(limit)).collect();
        if records.len() < limit {
            let keys: Vec<_> = records.iter().map(|record| lane(record, shared.settings.ordering)).collect();
            for key in keys {
                let room = limit - records.len();
                if room == 0 {
                    break;
                }
                records.extend(self.lanes.take_waiting(&key, room));
            }
        }
        records
    }

    /// Books the end of a task's records; `false` when one was left
    /// unfinished. A key whose records all finished may go on; one with a
    /// record left unfinished stays where it is (the worker is stopping).
    fn finished_all<H>(
        &mut self,
        shared: &Shared<H>,
        consumer: &GroupConsumer,
        backlog: &Backlog,
        joined: Result<JobOutcomes, tokio::task::JoinError>,
    ) -> bool {
        let outcomes = match joined.map_err(|error| error.to_string()).and_then(|outcomes| outcomes) {
            Ok(outcomes) => outcomes,
            Err(error) => {
                tracing::error!(%error, "a record's task failed; its partition waits for a restart");
                return false;
            }
        };
        let mut all_done = true;
        let mut committable = None;
        let mut keys: Vec<(Option<Vec<u8>>, bool)> = Vec::new();
        for (record, outcome) in outcomes {
            let done = outcome == Outcome::Done;
            if done {
                committable = self.lanes.mark_finished(record.offset()).or(committable);
                backlog.finished(consumer);
            } else {
                // Interrupted by shutdown or revocation: left for redelivery.
                tracing::debug!(
                    kafka.topic = record.topic(),
                    kafka.partition = record.partition(),
                    kafka.offset = record.offset(),
                    "record left for redelivery"
                );
                all_done = false;
            }
            let key = lane(&record, shared.settings.ordering);
            match keys.iter_mut().find(|(known, _)| *known == key) {
                Some((_, key_done)) => *key_done &= done,
                None => keys.push((key, done)),
            }
        }
        for (key, done) in keys {
            if done && let Some(next) = self.lanes.release(&key) {
                self.ready.push_back(next);
            }
        }
        if let Some(committable) = committable {
            if let Some(produced) = committable
                .produced_ms
                .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
            {
                shared.status.record_progress(&self.topic, self.number, produced);
            }
            if let Err(error) = consumer.store_offset(&self.topic, self.number, committable.offset) {
                // The partition was revoked meanwhile: its next owner redelivers
                // the records, and the inbox makes the repeats harmless.
                tracing::debug!(%error, kafka.topic = %self.topic, kafka.partition = self.number,
                    kafka.offset = committable.offset, "offset not stored");
            }
            self.report_oldest(shared);
        }
        all_done
    }
}
