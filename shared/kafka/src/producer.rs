use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use checkout_messages::{EncodeError, Envelope, Message, encode};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use tokio::sync::oneshot;

use crate::{KafkaSettings, RecordHeaders, TopicNames};

/// A record ready to be sent: physical topic, key, value and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: RecordHeaders,
}

impl OutgoingRecord {
    /// Encodes `envelope` for its type's topic, keyed by its subject (the order id).
    /// The caller adds trace context to `headers`.
    pub fn for_envelope(envelope: &Envelope<Message>, topics: &TopicNames) -> Result<Self, EncodeError> {
        Ok(Self {
            topic: topics.physical(envelope.payload.message_type().topic()),
            key: Some(envelope.subject.to_string().into_bytes()),
            payload: encode(envelope)?,
            headers: RecordHeaders::for_envelope(envelope),
        })
    }
}

/// Where the broker stored a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("kafka producer could not be created: {0}")]
    Create(#[source] KafkaError),
    #[error("record could not be enqueued: {0}")]
    Enqueue(#[source] KafkaError),
    #[error("record was not delivered: {0}")]
    Delivery(#[source] KafkaError),
    #[error("producer shut down before the delivery was reported")]
    Canceled,
    #[error("broker metadata could not be fetched: {0}")]
    Metadata(#[source] KafkaError),
}

/// Idempotent, `acks=all` producer shared by a whole service (cheap to clone).
///
/// Written on rdkafka's `BaseProducer` rather than its `FutureProducer`,
/// whose thread polls for delivery reports in 100-ms rounds and truncates a
/// round's time left to whole milliseconds, so it spins through the last
/// millisecond of every round: about 1 % of a core per producer, idle or
/// not (9 of an idle service's 15 ms of CPU per second, measured with
/// `perf`). Here a thread of our own polls in one-second rounds.
#[derive(Clone)]
pub struct Publisher {
    polled: Arc<Polled>,
}

/// The producer and its polling thread, which stops (within a round) when
/// the last `Publisher` clone is dropped.
struct Polled {
    producer: Arc<BaseProducer<Deliveries>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Polled {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How long one poll for delivery reports waits; also how long the polling
/// thread may outlive the last `Publisher`.
const POLL_ROUND: Duration = Duration::from_secs(1);

type Outcome = Result<Delivered, KafkaError>;

/// Resolves each record's pending delivery from its delivery report.
struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<oneshot::Sender<Outcome>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        use rdkafka::Message as _;
        let outcome = match result {
            Ok(message) => Ok(Delivered { partition: message.partition(), offset: message.offset() }),
            Err((error, _)) => Err(error.clone()),
        };
        // Nobody waiting (the caller gave up on the delivery) is fine.
        let _ = reply.send(outcome);
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// The broker's answer for one enqueued record.
#[must_use = "a record is only known to be stored once its delivery resolves"]
pub struct PendingDelivery(oneshot::Receiver<Outcome>);

impl std::fmt::Debug for PendingDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingDelivery")
    }
}

impl Future for PendingDelivery {
    type Output = Result<Delivered, PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|result| match result {
            Ok(Ok(delivered)) => Ok(delivered),
            Ok(Err(error)) => Err(PublishError::Delivery(error)),
            Err(_closed) => Err(PublishError::Canceled),
        })
    }
}

impl Publisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, PublishError> {
        let producer: BaseProducer<Deliveries> =
            settings.producer_config().create_with_context(Deliveries).map_err(PublishError::Create)?;
        let (producer, stop) = (Arc::new(producer), Arc::new(AtomicBool::new(false)));
        std::thread::Builder::new()
            .name("kafka-deliveries".into())
            .spawn({
                let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(POLL_ROUND);
                    }
                }
            })
            .map_err(|error| PublishError::Create(KafkaError::ClientCreation(error.to_string())))?;
        Ok(Self { polled: Arc::new(Polled { producer, stop }) })
    }

    /// Hands the record to the producer's queue and returns at once with its
    /// pending delivery; waits only while the local queue is full. Records
    /// enqueued one after another keep their order within a partition.
    pub async fn enqueue(&self, record: &OutgoingRecord) -> Result<PendingDelivery, PublishError> {
        loop {
            let (reply, delivery) = oneshot::channel();
            let mut kafka_record = BaseRecord::with_opaque_to(&record.topic, Box::new(reply))
                .payload(&record.payload)
                .headers(record.headers.to_kafka());
            if let Some(key) = &record.key {
                kafka_record = kafka_record.key(key);
            }
            match self.polled.producer.send(kafka_record) {
                Ok(()) => return Ok(PendingDelivery(delivery)),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Backpressure: the queue drains as the broker acknowledges.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => return Err(PublishError::Enqueue(error)),
            }
        }
    }

    /// Sends one record and waits for the broker to store it.
    pub async fn publish(&self, record: &OutgoingRecord) -> Result<Delivered, PublishError> {
        self.enqueue(record).await?.await
    }

    /// Asks the broker for the metadata of every topic, so the first record
    /// sent does not wait for the producer to learn where its partition lives.
    pub async fn warm_up(&self, timeout: Duration) -> Result<(), PublishError> {
        let producer = Arc::clone(&self.polled.producer);
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|_| PublishError::Canceled)?
            .map_err(PublishError::Metadata)
    }

    /// Waits until every enqueued record is delivered or failed, up to `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        let producer = Arc::clone(&self.polled.producer);
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|_| PublishError::Canceled)?
            .map_err(PublishError::Delivery)
    }
}
