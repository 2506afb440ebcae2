//! Follows completion from the system's own events instead of polling every
//! order: `OrderConfirmed` / `OrderCancelled` on the order events say the
//! order is terminal, the `SagaStepRecorded` marked `finished` that its
//! saga has ended. The feed reads every partition from its
//! end, with no consumer group, so it never disturbs the services' groups.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use checkout_domain::OrderId;
use checkout_messages::{Message, Topic, decode};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};

/// What an event said about an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Confirmed,
    Cancelled,
    /// The saga sent its last email: nothing more will happen.
    Finished,
}

/// Reads the events of `topics`, from now on.
pub struct Feed {
    consumer: StreamConsumer,
}

impl Feed {
    pub fn start(bootstrap: &str, prefix: &str) -> anyhow::Result<Self> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "checkout-load")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .set("client.id", "checkout-load")
            .create()
            .context("creating the completion feed's Kafka consumer")?;
        let names = checkout_kafka::TopicNames::new(prefix);
        let mut assignment = TopicPartitionList::new();
        for topic in [Topic::OrderEvents, Topic::OrchestratorEvents] {
            let name = names.physical(topic);
            let metadata = consumer
                .fetch_metadata(Some(&name), Duration::from_secs(10))
                .with_context(|| format!("asking the broker at {bootstrap} about {name}"))?;
            let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
            anyhow::ensure!(partitions > 0, "topic {name} does not exist (is KAFKA_TOPIC_PREFIX right?)");
            for partition in 0..partitions {
                let partition = i32::try_from(partition).context("partition number")?;
                assignment.add_partition_offset(&name, partition, Offset::End).context("assigning")?;
            }
        }
        consumer.assign(&assignment).context("assigning the event topics")?;
        Ok(Self { consumer })
    }

    /// The next event about an order, and when it arrived.
    pub async fn next(&self) -> anyhow::Result<(OrderId, Event, Instant)> {
        loop {
            let record = self.consumer.recv().await.context("reading the event topics")?;
            let Some(payload) = record.payload() else { continue };
            let Ok(decoded) = decode(payload) else { continue };
            let event = match decoded.envelope.payload {
                Message::OrderConfirmed(_) => Event::Confirmed,
                Message::OrderCancelled(_) => Event::Cancelled,
                Message::SagaStepRecorded(step) if step.finished => Event::Finished,
                _ => continue,
            };
            return Ok((decoded.envelope.subject, event, Instant::now()));
        }
    }
}
