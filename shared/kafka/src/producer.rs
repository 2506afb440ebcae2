use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use checkout_messages::{EncodeError, Envelope, Message, encode};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

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
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// The broker's answer for one enqueued record.
#[must_use = "a record is only known to be stored once its delivery resolves"]
pub struct PendingDelivery(DeliveryFuture);

impl std::fmt::Debug for PendingDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingDelivery")
    }
}

impl Future for PendingDelivery {
    type Output = Result<Delivered, PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|result| match result {
            Ok(Ok(delivery)) => Ok(Delivered { partition: delivery.partition, offset: delivery.offset }),
            Ok(Err((error, _))) => Err(PublishError::Delivery(error)),
            Err(_canceled) => Err(PublishError::Canceled),
        })
    }
}

impl Publisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, PublishError> {
        let producer = settings.producer_config().create().map_err(PublishError::Create)?;
        Ok(Self { producer })
    }

    /// Hands the record to the producer's queue and returns at once with its
    /// pending delivery; waits only while the local queue is full. Records
    /// enqueued one after another keep their order within a partition.
    pub async fn enqueue(&self, record: &OutgoingRecord) -> Result<PendingDelivery, PublishError> {
        loop {
            let mut kafka_record =
                FutureRecord::to(&record.topic).payload(&record.payload).headers(record.headers.to_kafka());
            if let Some(key) = &record.key {
                kafka_record = kafka_record.key(key);
            }
            match self.producer.send_result(kafka_record) {
                Ok(delivery) => return Ok(PendingDelivery(delivery)),
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
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|_| PublishError::Canceled)?
            .map_err(PublishError::Metadata)
    }

    /// Waits until every enqueued record is delivered or failed, up to `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|_| PublishError::Canceled)?
            .map_err(PublishError::Delivery)
    }
}
