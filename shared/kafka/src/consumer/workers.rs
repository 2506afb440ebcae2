use std::collections::HashMap;
use std::sync::Arc;

use rdkafka::Message as _;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
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
    records: mpsc::Sender<OwnedMessage>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
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

    /// The queue of the worker for this partition, starting one if needed.
    pub(crate) fn sender_for(&mut self, topic: &str, partition: i32) -> mpsc::Sender<OwnedMessage> {
        let key = (topic.to_owned(), partition);
        if let Some(worker) = self.active.get(&key).filter(|worker| !worker.records.is_closed()) {
            return worker.records.clone();
        }
        let previous = self.active.remove(&key).map(|worker| worker.handle).or_else(|| self.retiring.remove(&key));
        let (records, receiver) = mpsc::channel(self.shared.settings.partition_buffer.max(1));
        let stop = CancellationToken::new();
        let handle = self.tracker.spawn(run_worker(
            Arc::clone(&self.shared),
            Arc::clone(&self.consumer),
            receiver,
            stop.clone(),
            previous,
        ));
        self.active.insert(key, Worker { records: records.clone(), stop, handle });
        records
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
    mut records: mpsc::Receiver<OwnedMessage>,
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
                if let Err(error) = consumer.store_offset(record.topic(), record.partition(), record.offset()) {
                    // The partition was revoked meanwhile: its next owner redelivers
                    // the record, and the inbox makes the repeat harmless.
                    tracing::debug!(%error, kafka.topic = record.topic(), kafka.partition = record.partition(),
                        kafka.offset = record.offset(), "offset not stored");
                }
            }
            Outcome::Abandoned => return,
        }
    }
}
