use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::sync::mpsc;

use super::ConsumerStatus;

/// A partition, by physical topic name and number.
pub(crate) type PartitionKey = (String, i32);

#[derive(Debug)]
pub(crate) enum RebalanceEvent {
    Revoked(Vec<PartitionKey>),
}

/// Receives librdkafka's callbacks (on the thread polling the consumer) and
/// passes rebalances to the dispatcher; they must return quickly.
pub(crate) struct RuntimeContext {
    events: mpsc::UnboundedSender<RebalanceEvent>,
    status: ConsumerStatus,
    group_id: String,
}

impl RuntimeContext {
    pub(crate) fn new(events: mpsc::UnboundedSender<RebalanceEvent>, status: ConsumerStatus, group_id: String) -> Self {
        Self { events, status, group_id }
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<PartitionKey> {
    list.elements().iter().map(|element| (element.topic().to_owned(), element.partition())).collect()
}

impl ClientContext for RuntimeContext {}

impl ConsumerContext for RuntimeContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked = partitions(list);
            tracing::info!(consumer.group = %self.group_id, partitions = ?revoked, "partitions revoked");
            // The receiver only goes away when the runtime has stopped.
            let _ = self.events.send(RebalanceEvent::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Cooperative rebalancing hands out and takes back partitions a few at
        // a time: the lists name what changed, the assignment is what is owned.
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(consumer.group = %self.group_id, partitions = ?partitions(list), "partitions assigned");
                // A partition paused by a previous owner's backlog in this process
                // starts afresh: its new worker has nothing queued.
                if let Err(error) = consumer.resume(list) {
                    tracing::warn!(consumer.group = %self.group_id, %error, "could not resume assigned partitions");
                }
            }
            Rebalance::Error(error) => tracing::warn!(consumer.group = %self.group_id, %error, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
        match consumer.assignment() {
            Ok(owned) => self.status.set_assigned(owned.count()),
            Err(error) => tracing::warn!(consumer.group = %self.group_id, %error, "could not read the assignment"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        // "No offset" only means nothing new was processed since the last commit.
        if let Err(error) = result.filter_no_offset() {
            // The next commit carries the same or later offsets; redelivery covers the gap.
            tracing::warn!(consumer.group = %self.group_id, %error, offsets = ?partitions(offsets), "offset commit failed");
        }
    }
}

trait FilterNoOffset {
    fn filter_no_offset(self) -> KafkaResult<()>;
}

impl FilterNoOffset for KafkaResult<()> {
    fn filter_no_offset(self) -> KafkaResult<()> {
        match self {
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            other => other,
        }
    }
}
