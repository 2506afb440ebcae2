//! Reading topics outside a consumer group: where each partition ends (for
//! lag), and every record from offset 0 to those ends (to rebuild a read
//! model by replay).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use checkout_messages::{Envelope, Message, decode};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message as _, Offset, TopicPartitionList};

use crate::{KafkaSettings, RecordPosition};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A topic and partition.
pub type Partition = (String, i32);

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("kafka client could not be created: {0}")]
    Create(#[source] KafkaError),
    #[error("could not read where {topic} ends: {source}")]
    Watermarks {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("topic {0} does not exist")]
    NoSuchTopic(String),
    #[error("reading the topics failed: {0}")]
    Read(#[source] KafkaError),
}

/// Asks the brokers where partitions end. One client, kept for the process.
#[derive(Clone)]
pub struct Watermarks {
    client: Arc<BaseConsumer>,
}

impl std::fmt::Debug for Watermarks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watermarks")
    }
}

impl Watermarks {
    pub fn new(settings: &KafkaSettings) -> Result<Self, ReplayError> {
        let client = settings.consumer_config("checkout-watermarks").create().map_err(ReplayError::Create)?;
        Ok(Self { client: Arc::new(client) })
    }

    /// The next offset to be written (the high watermark) of every
    /// partition of `topics`.
    pub async fn ends(&self, topics: &[String]) -> Result<BTreeMap<Partition, i64>, ReplayError> {
        let client = Arc::clone(&self.client);
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut ends = BTreeMap::new();
            for topic in topics {
                let metadata = client
                    .fetch_metadata(Some(&topic), TIMEOUT)
                    .map_err(|source| ReplayError::Watermarks { topic: topic.clone(), source })?;
                let partitions = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map(|t| t.partitions().iter().map(rdkafka::metadata::MetadataPartition::id).collect::<Vec<_>>())
                    .filter(|ids| !ids.is_empty())
                    .ok_or_else(|| ReplayError::NoSuchTopic(topic.clone()))?;
                for partition in partitions {
                    let (_, high) = client
                        .fetch_watermarks(&topic, partition, TIMEOUT)
                        .map_err(|source| ReplayError::Watermarks { topic: topic.clone(), source })?;
                    ends.insert((topic.clone(), partition), high);
                }
            }
            Ok(ends)
        })
        .await
        .map_err(|_| ReplayError::Read(KafkaError::Canceled))?
    }
}

/// One record read by a [`Replay`]: its envelope, or `None` when it does not
/// decode (a replay skips what the live consumer dead-lettered).
#[derive(Debug)]
pub struct Replayed {
    pub envelope: Option<Envelope<Message>>,
    pub position: RecordPosition,
}

/// Every record of some topics from offset 0 up to where they ended when
/// asked ([`Replay::start`], [`Replay::extend`]).
pub struct Replay {
    consumer: StreamConsumer,
    watermarks: Watermarks,
    topics: Vec<String>,
    /// Per partition, the offset to read up to (exclusive) and the next one expected.
    remaining: BTreeMap<Partition, (i64, i64)>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("topics", &self.topics)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// Assigns every partition of `topics` from the beginning, reading up to
    /// where each ends now. No consumer group is joined and nothing is committed.
    pub async fn start(settings: &KafkaSettings, topics: &[String]) -> Result<Self, ReplayError> {
        let mut config = settings.consumer_config(&format!("checkout-replay-{}", uuid::Uuid::now_v7()));
        config.set("enable.auto.commit", "false");
        let consumer: StreamConsumer = config.create().map_err(ReplayError::Create)?;
        let watermarks = Watermarks::new(settings)?;
        let ends = watermarks.ends(topics).await?;
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in ends.keys() {
            assignment.add_partition_offset(topic, *partition, Offset::Beginning).map_err(ReplayError::Read)?;
        }
        consumer.assign(&assignment).map_err(ReplayError::Read)?;
        let remaining = ends.into_iter().map(|(partition, end)| (partition, (end, 0))).collect();
        Ok(Self { consumer, watermarks, topics: topics.to_vec(), remaining })
    }

    /// Reads on to where the topics end now.
    pub async fn extend(&mut self) -> Result<(), ReplayError> {
        for (partition, end) in self.watermarks.ends(&self.topics).await? {
            self.remaining.entry(partition).or_insert((end, 0)).0 = end;
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.remaining.values().all(|(end, next)| next >= end)
    }

    /// The next record, or `None` once every partition has been read to its end.
    pub async fn next(&mut self) -> Result<Option<Replayed>, ReplayError> {
        let Some(message) = self.next_record().await? else { return Ok(None) };
        let envelope = decode(message.payload().unwrap_or_default()).ok().map(|decoded| decoded.envelope);
        let position = RecordPosition {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };
        Ok(Some(Replayed { envelope, position }))
    }

    /// The next record as it is on the broker (key, headers and value
    /// undecoded), or `None` once every partition has been read to its end.
    pub async fn next_record(&mut self) -> Result<Option<OwnedMessage>, ReplayError> {
        while !self.finished() {
            let message = self.consumer.recv().await.map_err(ReplayError::Read)?;
            let key = (message.topic().to_owned(), message.partition());
            let Some((end, next)) = self.remaining.get_mut(&key) else { continue };
            *next = message.offset() + 1;
            if message.offset() >= *end {
                continue;
            }
            return Ok(Some(message.detach()));
        }
        Ok(None)
    }
}
