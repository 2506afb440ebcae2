//! Reading topics outside a consumer group: where each partition ends (for
//! lag), and every record from offset 0 to those ends (to rebuild a read
//! model by replay).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    #[error("the broker gave no end for {topic} partition {partition}")]
    NoEnd { topic: String, partition: i32 },
    #[error("reading the topics failed: {0}")]
    Read(#[source] KafkaError),
}

/// Asks the brokers where partitions end. One client, kept for the process.
///
/// All the partitions asked about go in one `ListOffsets` request (for the
/// latest offset), and each topic's partitions are looked up once and then
/// again only every [`PARTITIONS_REFRESH`] or after a failed query: asking
/// partition by partition (librdkafka's `query_watermark_offsets`) costs two
/// requests per partition and a metadata request per topic, which a monitor
/// that asks twice a second turned into a tenth of the broker's requests.
#[derive(Clone)]
pub struct Watermarks {
    client: Arc<BaseConsumer>,
    partitions: Arc<Mutex<HashMap<String, KnownPartitions>>>,
}

/// How long a topic's partition list is trusted before it is looked up again.
pub const PARTITIONS_REFRESH: Duration = Duration::from_secs(30);

struct KnownPartitions {
    ids: Vec<i32>,
    looked_up: Instant,
}

impl std::fmt::Debug for Watermarks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watermarks")
    }
}

impl Watermarks {
    pub fn new(settings: &KafkaSettings) -> Result<Self, ReplayError> {
        let client = settings.consumer_config("checkout-watermarks").create().map_err(ReplayError::Create)?;
        Ok(Self { client: Arc::new(client), partitions: Arc::default() })
    }

    /// The next offset to be written (the high watermark) of every
    /// partition of `topics`.
    pub async fn ends(&self, topics: &[String]) -> Result<BTreeMap<Partition, i64>, ReplayError> {
        let this = self.clone();
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            let result = this.query_ends(&topics);
            if result.is_err() {
                // A partition added or a topic recreated: look them up afresh next time.
                this.known().clear();
            }
            result
        })
        .await
        .map_err(|_| ReplayError::Read(KafkaError::Canceled))?
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, KnownPartitions>> {
        // The map is only a cache: one poisoned by a panic elsewhere is still usable.
        self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Blocking: one `ListOffsets` request, after a metadata request for each
    /// topic whose partitions are not known or known for too long.
    fn query_ends(&self, topics: &[String]) -> Result<BTreeMap<Partition, i64>, ReplayError> {
        let watermarks_error = |topic: &str| {
            let topic = topic.to_owned();
            move |source| ReplayError::Watermarks { topic, source }
        };
        let mut latest = TopicPartitionList::new();
        for topic in topics {
            for partition in self.partition_ids(topic)? {
                // The `End` offset asks for the latest offset, not a time.
                latest.add_partition_offset(topic, partition, Offset::End).map_err(watermarks_error(topic))?;
            }
        }
        let answered = self.client.offsets_for_times(latest, TIMEOUT).map_err(watermarks_error(&topics.join(", ")))?;
        let mut ends = BTreeMap::new();
        for element in answered.elements() {
            element.error().map_err(watermarks_error(element.topic()))?;
            let Some(end) = element.offset().to_raw() else {
                return Err(ReplayError::NoEnd { topic: element.topic().to_owned(), partition: element.partition() });
            };
            ends.insert((element.topic().to_owned(), element.partition()), end);
        }
        Ok(ends)
    }

    fn partition_ids(&self, topic: &str) -> Result<Vec<i32>, ReplayError> {
        if let Some(known) = self.known().get(topic).filter(|known| known.looked_up.elapsed() < PARTITIONS_REFRESH) {
            return Ok(known.ids.clone());
        }
        let metadata = self
            .client
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|source| ReplayError::Watermarks { topic: topic.to_owned(), source })?;
        let ids = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().iter().map(rdkafka::metadata::MetadataPartition::id).collect::<Vec<_>>())
            .filter(|ids| !ids.is_empty())
            .ok_or_else(|| ReplayError::NoSuchTopic(topic.to_owned()))?;
        self.known().insert(topic.to_owned(), KnownPartitions { ids: ids.clone(), looked_up: Instant::now() });
        Ok(ids)
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
