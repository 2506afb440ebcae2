use std::time::Duration;

use checkout_messages::Topic;
use rdkafka::ClientConfig;

use crate::{RetryPolicy, TopicNames};

/// How to reach the brokers, shared by producers and consumers.
#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// Prepended to every topic name (isolates test runs or tenants on one cluster).
    pub topic_prefix: String,
    /// Identifies this process to the brokers, in their logs and quotas.
    pub client_id: String,
    /// How long the broker may hold a fetch open waiting for data. Kafka
    /// answers a fetch as soon as one byte is there, so this is not added to
    /// a hop's latency; it bounds how long a resumed or newly assigned
    /// partition waits for the fetch in flight, at the cost of a few empty
    /// fetches a second when idle.
    pub fetch_wait_max: Duration,
    /// A consumer that misses heartbeats this long is evicted from its group.
    pub session_timeout: Duration,
    /// How a group shares partitions out (`partition.assignment.strategy`).
    pub assignment_strategy: String,
    /// How long the producer waits to fill a batch before sending it. None by
    /// default: the relay enqueues a whole batch before awaiting it, and what
    /// queues while a request is in flight goes out together anyway, so a
    /// linger only adds its length to every hop of a checkout.
    pub linger: Duration,
    /// How long the producer keeps retrying a record before failing its delivery.
    pub delivery_timeout: Duration,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            client_id: "checkout".into(),
            fetch_wait_max: Duration::from_millis(100),
            session_timeout: Duration::from_secs(10),
            assignment_strategy: "cooperative-sticky".into(),
            linger: Duration::ZERO,
            delivery_timeout: Duration::from_secs(30),
        }
    }
}

impl KafkaSettings {
    pub fn topic_names(&self) -> TopicNames {
        TopicNames::new(&self.topic_prefix)
    }

    pub(crate) fn base_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id)
            // Reconnect to a restarted broker within a second; the default
            // backoff grows to 10 s, which a short outage turns into 10 s more.
            .set("reconnect.backoff.max.ms", "1000")
            // Send each request at once. With Nagle's algorithm (librdkafka's
            // default) a small request waits while an earlier one on the same
            // connection is unacknowledged, and every hop of a checkout is a
            // few small requests.
            .set("socket.nagle.disable", "true");
        config
    }

    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut config = self.base_config();
        config
            // No duplicates or reordering from the producer's own retries.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Same key-to-partition mapping as the Java client, so other producers agree.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", millis(self.linger))
            .set("message.timeout.ms", millis(self.delivery_timeout));
        config
    }

    pub(crate) fn consumer_config(&self, group_id: &str) -> ClientConfig {
        let mut config = self.base_config();
        config
            .set("group.id", group_id)
            // Offsets are stored by the runtime after a record is fully handled,
            // and committed in the background (and synchronously on shutdown).
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000")
            // A new group starts from the beginning: records written before the
            // first consumer joined must not be skipped.
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Per-partition offsets and watermarks once a second: how far
            // processing has come (see `ConsumerStatus::processed_through`).
            .set("statistics.interval.ms", "1000")
            .set("fetch.wait.max.ms", millis(self.fetch_wait_max))
            // The classic group protocol with cooperative rebalancing by default: a member
            // that joins or leaves moves only the partitions that change owner,
            // the others keep being processed (no stop-the-world revoke).
            // Chosen over KIP-848 (`group.protocol=consumer`) because there the
            // broker owns the session timeout (at least 45 s by default), so a
            // killed member's partitions would wait that long; here a member
            // that stops heartbeating is evicted after `session_timeout`.
            .set("partition.assignment.strategy", &self.assignment_strategy)
            .set("session.timeout.ms", millis(self.session_timeout))
            // A rebalance waits for every member to hear of it in a heartbeat.
            .set("heartbeat.interval.ms", millis(self.session_timeout / 10));
        config
    }
}

/// What one consumer group reads and how it handles failures.
#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub group_id: String,
    pub topics: Vec<Topic>,
    /// What must be processed in order: the records of one key (default), or
    /// all the records of a partition.
    pub ordering: RecordOrdering,
    /// Most records processed at the same moment, across all partitions
    /// (records that must be in order never run at the same time).
    pub max_in_flight: usize,
    /// Records held per partition between fetch and commit (fetching pauses
    /// when they reach it); also the most that a crash may leave to be
    /// redelivered, per partition.
    pub partition_buffer: usize,
    /// Most records of one partition handed to one [`Handler::handle_batch`]
    /// call (1: never batched): the records that may start now and those
    /// waiting behind them, in order. A batch takes one of the
    /// `max_in_flight` places.
    ///
    /// [`Handler::handle_batch`]: crate::Handler::handle_batch
    pub max_batch: usize,
    /// With `max_batch` above 1: when above 0, the ready records of all
    /// partitions go to the handler together, at most this many
    /// [`Handler::handle_batch`] calls at once, and records that become ready
    /// meanwhile join the next call (group commit; see the runtime's
    /// documentation). 0: a call per partition's batch, as many at once as
    /// `max_in_flight` allows.
    ///
    /// [`Handler::handle_batch`]: crate::Handler::handle_batch
    pub concurrent_batches: usize,
    pub retry: RetryPolicy,
}

impl ConsumerSettings {
    pub fn new(group_id: impl Into<String>, topics: impl IntoIterator<Item = Topic>) -> Self {
        Self {
            group_id: group_id.into(),
            topics: topics.into_iter().collect(),
            ordering: RecordOrdering::Key,
            max_in_flight: 64,
            partition_buffer: 64,
            max_batch: 1,
            concurrent_batches: 0,
            retry: RetryPolicy::default(),
        }
    }
}

/// What a consumer processes strictly in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordOrdering {
    /// The records of one key; records of different keys run concurrently.
    #[default]
    Key,
    /// All the records of a partition, one at a time (partitions run
    /// concurrently).
    Partition,
}

impl std::str::FromStr for RecordOrdering {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "key" => Ok(Self::Key),
            "partition" => Ok(Self::Partition),
            other => Err(format!("{other:?} is not key or partition")),
        }
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}
