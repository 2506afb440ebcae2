use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use time::OffsetDateTime;
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
    /// How stale a partition's high watermark in the statistics may be.
    fetch_wait_max: Duration,
}

impl RuntimeContext {
    pub(crate) fn new(
        events: mpsc::UnboundedSender<RebalanceEvent>,
        status: ConsumerStatus,
        group_id: String,
        fetch_wait_max: Duration,
    ) -> Self {
        Self { events, status, group_id, fetch_wait_max }
    }
}

/// Whether the statistics show that every record of the partition has been
/// processed: stored offset at the end, or nothing stored yet but nothing to
/// process either (committed at the end, or the partition empty).
fn caught_up(partition: &rdkafka::statistics::Partition) -> bool {
    if !partition.desired || partition.hi_offset < 0 {
        return false;
    }
    partition.consumer_lag_stored == 0
        || (partition.stored_offset < 0 && (partition.consumer_lag == 0 || partition.hi_offset == partition.lo_offset))
}

/// Records of the partition not yet processed by this member, as the
/// statistics tell it: behind the stored offset once one is stored, behind
/// the committed one before. `None` when the client does not know yet.
fn lag(partition: &rdkafka::statistics::Partition) -> Option<i64> {
    let lag = if partition.stored_offset >= 0 { partition.consumer_lag_stored } else { partition.consumer_lag };
    (partition.hi_offset >= 0 && lag >= 0).then_some(lag)
}

/// Seconds since the oldest unfinished record was produced (0 when none is).
fn age_seconds(oldest_unfinished_ms: Option<i64>, now_ms: i64) -> f64 {
    oldest_unfinished_ms
        .map_or(0.0, |produced| Duration::from_millis(u64::try_from(now_ms - produced).unwrap_or(0)).as_secs_f64())
}

fn partitions(list: &TopicPartitionList) -> Vec<PartitionKey> {
    list.elements().iter().map(|element| (element.topic().to_owned(), element.partition())).collect()
}

impl RuntimeContext {
    /// The partition's lag and the age of its oldest unfinished record.
    fn export(&self, topic: &str, partition: i32, lag: Option<i64>, now_ms: i64) {
        let age = age_seconds(self.status.oldest_unfinished_ms(topic, partition), now_ms);
        // Record counts this large are not exact in f64 anyway.
        #[allow(clippy::cast_precision_loss)]
        self.set_gauges(topic, partition, lag.map(|lag| lag as f64), age);
    }

    fn set_gauges(&self, topic: &str, partition: i32, lag: Option<f64>, age_seconds: f64) {
        let labels =
            [("group", self.group_id.clone()), ("topic", topic.to_owned()), ("partition", partition.to_string())];
        if let Some(lag) = lag {
            metrics::gauge!("checkout_consumer_lag_records", &labels).set(lag);
        }
        metrics::gauge!("checkout_consumer_oldest_unprocessed_age_seconds", &labels).set(age_seconds);
    }
}

impl ClientContext for RuntimeContext {
    /// Every second (`statistics.interval.ms`): the broker connections, and
    /// partitions with nothing left to process are processed through the
    /// time of the broker's answer.
    fn stats(&self, statistics: Statistics) {
        // The brokers of the cluster (not the bootstrap addresses or the
        // logical coordinator entries), and whether the client is talking to them.
        let brokers: Vec<_> = statistics.brokers.values().filter(|b| b.nodeid >= 0 && b.source == "learned").collect();
        let up = brokers.iter().filter(|b| b.state == "UP").count();
        self.status.record_broker_connections(up, brokers.len(), std::time::Instant::now());
        let Ok(now) = OffsetDateTime::from_unix_timestamp(statistics.time) else { return };
        // The watermark may be one fetch wait old; a second is the sample's resolution.
        let as_of = now - self.fetch_wait_max - Duration::from_secs(1);
        let now_ms = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        for (topic, details) in &statistics.topics {
            for partition in details.partitions.values().filter(|p| p.partition >= 0 && p.desired) {
                if caught_up(partition) {
                    self.status.record_progress(topic, partition.partition, as_of);
                }
                self.export(topic, partition.partition, lag(partition), now_ms);
            }
        }
    }
}

impl ConsumerContext for RuntimeContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked = partitions(list);
            tracing::info!(consumer.group = %self.group_id, partitions = ?revoked, "partitions revoked");
            // Another member owns them now: this one is behind on nothing there.
            for (topic, partition) in &revoked {
                self.set_gauges(topic, *partition, Some(0.0), 0.0);
            }
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
            Ok(owned) => {
                self.status.set_assigned(owned.count());
                self.status.set_owned(partitions(&owned));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_measured_from_the_oldest_unfinished_record_and_is_zero_without_one() {
        assert!((age_seconds(Some(1_000), 3_500) - 2.5).abs() < f64::EPSILON);
        assert!(age_seconds(None, 3_500).abs() < f64::EPSILON);
        assert!(age_seconds(Some(4_000), 3_500).abs() < f64::EPSILON, "a clock step back is not a negative age");
    }
}
