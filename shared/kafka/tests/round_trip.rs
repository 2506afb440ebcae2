//! A record produced through the publisher reaches a consumer group member
//! decoded, keyed by its order id, with envelope attributes and trace context
//! in its headers.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_kafka::{OutgoingRecord, header_names};
use checkout_testkit::{TestKafka, eventually, header};
use common::{ScriptedHandler, TOPIC, fast_retries, new_order, numbered, settings, start_member};
use rdkafka::Message as _;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_record_round_trips_with_its_headers_intact() {
    let kafka = TestKafka::with_topics(&[TOPIC], 3).await;
    let handler = ScriptedHandler::always_succeeding("only");
    let member = start_member(&kafka, settings("round-trip", fast_retries()), handler.clone()).await;

    let order = new_order();
    let envelope = numbered(order, 7);
    let mut record = OutgoingRecord::for_envelope(&envelope, &kafka.names()).unwrap();
    record.headers.insert(header_names::TRACEPARENT, TRACEPARENT);
    record.headers.insert(header_names::TRACESTATE, "vendor=value");
    let delivered = kafka.publisher().publish(&record).await.unwrap();

    let handled = eventually(Duration::from_secs(20), "the record to be handled", || {
        let handled = handler.handled();
        async move { handled.first().cloned() }
    })
    .await;
    assert_eq!((handled.order, handled.seq, handled.message_id), (order, 7, envelope.id));
    assert_eq!(handled.traceparent.as_deref(), Some(TRACEPARENT));

    let raw = kafka.read(&kafka.names().physical(TOPIC), 1, Duration::from_secs(10)).await;
    let raw = &raw[0];
    assert_eq!(raw.key(), Some(order.to_string().as_bytes()), "records are keyed by order id");
    assert_eq!(raw.partition(), delivered.partition);
    assert_eq!(header(raw, header_names::CONTENT_TYPE), Some(header_names::CLOUDEVENTS_JSON));
    assert_eq!(header(raw, header_names::ID), Some(envelope.id.to_string().as_str()));
    assert_eq!(header(raw, header_names::TYPE), Some("SagaStepRecorded"));
    let version = checkout_messages::MessageType::SagaStepRecorded.current_version().to_string();
    assert_eq!(header(raw, header_names::SCHEMA_VERSION), Some(version.as_str()));
    assert_eq!(header(raw, header_names::SUBJECT), Some(order.to_string().as_str()));
    assert_eq!(header(raw, header_names::CORRELATION_ID), Some(envelope.correlation_id.to_string().as_str()));
    assert_eq!(header(raw, header_names::CAUSATION_ID), Some(envelope.causation_id.to_string().as_str()));
    assert_eq!(header(raw, header_names::TRACEPARENT), Some(TRACEPARENT));
    assert_eq!(header(raw, header_names::TRACESTATE), Some("vendor=value"));
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_always_lands_on_the_same_partition() {
    let kafka = TestKafka::with_topics(&[TOPIC], 4).await;
    let publisher = kafka.publisher();
    let names = kafka.names();
    for _ in 0..10 {
        let order = new_order();
        let mut partitions = Vec::new();
        for seq in 0..3 {
            let record = OutgoingRecord::for_envelope(&numbered(order, seq), &names).unwrap();
            partitions.push(publisher.publish(&record).await.unwrap().partition);
        }
        partitions.dedup();
        assert_eq!(partitions.len(), 1, "order {order} was spread over partitions");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_up_succeeds_against_the_broker_and_fails_plainly_without_one() {
    let kafka = TestKafka::with_topics(&[TOPIC], 2).await;
    kafka.publisher().warm_up(Duration::from_secs(10)).await.unwrap();

    let mut nowhere = kafka.settings.clone();
    nowhere.bootstrap_servers = "127.0.0.1:1".into();
    let publisher = checkout_kafka::Publisher::new(&nowhere).unwrap();
    let error = publisher.warm_up(Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(error, checkout_kafka::PublishError::Metadata(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_lands_on_the_partition_the_partitioner_says() {
    let kafka = TestKafka::with_topics(&[TOPIC], 5).await;
    let publisher = kafka.publisher();
    for _ in 0..50 {
        let record = OutgoingRecord::for_envelope(&numbered(new_order(), 1), &kafka.names()).unwrap();
        let delivered = publisher.publish(&record).await.unwrap();
        let key = record.key.as_deref().unwrap();
        assert_eq!(delivered.partition, checkout_kafka::partition_for_key(key, 5), "key {key:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_reports_where_the_record_was_stored_and_one_that_cannot_be_made_fails_plainly() {
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let publisher = kafka.publisher();
    let record = OutgoingRecord::for_envelope(&numbered(new_order(), 1), &kafka.names()).unwrap();
    let first = publisher.publish(&record).await.unwrap();
    let second = publisher.publish(&record).await.unwrap();
    assert_eq!((first.partition, second.partition, second.offset), (0, 0, first.offset + 1));

    let mut nowhere = kafka.settings.clone();
    nowhere.bootstrap_servers = "127.0.0.1:1".into();
    nowhere.delivery_timeout = Duration::from_millis(500);
    let error = checkout_kafka::Publisher::new(&nowhere).unwrap().publish(&record).await.unwrap_err();
    assert!(matches!(error, checkout_kafka::PublishError::Delivery(_)), "{error}");
}
