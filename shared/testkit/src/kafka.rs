use std::time::{Duration, Instant};

use checkout_kafka::{KafkaSettings, OutgoingRecord, Publisher, RecordHeaders, TopicNames, TopicSpec, admin};
use checkout_messages::Topic;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// A set of topics that belong to one test, named `t<12 hex digits>-<topic>`,
/// deleted when the value is dropped.
#[derive(Debug)]
pub struct TestKafka {
    pub settings: KafkaSettings,
    created: Vec<String>,
}

impl TestKafka {
    pub fn bootstrap_servers() -> String {
        std::env::var("TEST_KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
    }

    /// Creates `topics` and their dead-letter topics under a fresh prefix.
    pub async fn with_topics(topics: &[Topic], partitions: i32) -> Self {
        let settings = KafkaSettings {
            bootstrap_servers: Self::bootstrap_servers(),
            topic_prefix: format!("t{}-", crate::unique_suffix()),
            client_id: "checkout-test".into(),
            ..KafkaSettings::default()
        };
        let names = settings.topic_names();
        let wanted: Vec<String> = topics.iter().flat_map(|&t| [names.physical(t), names.dead_letter(t)]).collect();
        let specs: Vec<TopicSpec> = names.specs().into_iter().filter(|spec| wanted.contains(&spec.name)).collect();
        let created = specs.iter().map(|spec| spec.name.clone()).collect();
        admin::create_topics(&settings, &specs, partitions, 1).await.expect("test topics could not be created");
        Self { settings, created }
    }

    /// Creates every topic of the system and its dead-letter topic under a fresh prefix.
    pub async fn with_all_topics(partitions: i32) -> Self {
        Self::with_topics(&Topic::ALL, partitions).await
    }

    pub fn names(&self) -> TopicNames {
        self.settings.topic_names()
    }

    pub fn publisher(&self) -> Publisher {
        Publisher::new(&self.settings).unwrap()
    }

    /// Produces a raw record, bypassing the envelope codec (for poison records).
    pub async fn produce_raw(&self, topic: &str, key: &str, payload: &[u8], headers: RecordHeaders) {
        let record = OutgoingRecord {
            topic: topic.into(),
            key: Some(key.as_bytes().to_vec()),
            payload: payload.to_vec(),
            headers,
        };
        self.publisher().publish(&record).await.unwrap();
    }

    /// Reads `topic` from the beginning of every partition until `count`
    /// records arrived; panics after `timeout` with how many did.
    pub async fn read(&self, topic: &str, count: usize, timeout: Duration) -> Vec<OwnedMessage> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.settings.bootstrap_servers)
            .set("group.id", format!("reader-{}", crate::unique_suffix()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).unwrap();
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
        let mut assignment = TopicPartitionList::new();
        for partition in 0..i32::try_from(partitions).unwrap() {
            assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        while records.len() < count {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let received = tokio::time::timeout(remaining, consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("read {} of {count} records from {topic} in {timeout:?}", records.len()));
            records.push(received.unwrap_or_else(|error| panic!("reading {topic}: {error}")).detach());
        }
        records
    }
}

impl TestKafka {
    /// How many records `topic` holds (the sum of its partitions' high watermarks).
    pub fn record_count(&self, topic: &str) -> i64 {
        let consumer: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", &self.settings.bootstrap_servers).create().unwrap();
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).unwrap();
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
        (0..i32::try_from(partitions).unwrap())
            .map(|partition| consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)).unwrap().1)
            .sum()
    }
}

impl Drop for TestKafka {
    fn drop(&mut self) {
        let (settings, names) = (self.settings.clone(), std::mem::take(&mut self.created));
        // Drop may run inside a runtime that is blocked on us: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            if let Err(error) = runtime.block_on(admin::delete_topics(&settings, &names)) {
                eprintln!("test topics {names:?} were not deleted: {error}");
            }
        })
        .join();
    }
}

/// A header of a raw record, as text.
pub fn header<'a>(record: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    record.headers()?.iter().find(|h| h.key == name).and_then(|h| std::str::from_utf8(h.value?).ok())
}
