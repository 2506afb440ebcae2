//! Records that cannot be processed go to the dead-letter topic with headers
//! that say why, and the partition moves on to the next record.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_kafka::{DeadLetterHeader, OutgoingRecord, RecordHeaders, header_names};
use checkout_messages::encode;
use checkout_testkit::{TestKafka, eventually, header};
use common::{
    Behaviour, ScriptedHandler, TOPIC, fast_retries, new_order, numbered, sequence_number, settings, start_member,
};
use rdkafka::Message as _;
use rdkafka::message::OwnedMessage;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn traced() -> RecordHeaders {
    let mut headers = RecordHeaders::new();
    headers.insert(header_names::TRACEPARENT, TRACEPARENT);
    headers
}

/// A valid encoding of a message with one envelope attribute replaced.
fn tampered(order: checkout_domain::OrderId, attribute: &str, value: serde_json::Value) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(&encode(&numbered(order, 0)).unwrap()).unwrap();
    json[attribute] = value;
    serde_json::to_vec(&json).unwrap()
}

fn assert_dead_letter(record: &OwnedMessage, source_topic: &str, class: &str, attempts: &str) {
    let h = |name| header(record, name).unwrap_or_else(|| panic!("dead letter lacks {name}"));
    assert_eq!(h(DeadLetterHeader::ORIGINAL_TOPIC), source_topic);
    assert!(h(DeadLetterHeader::ORIGINAL_PARTITION).parse::<i32>().is_ok());
    assert!(h(DeadLetterHeader::ORIGINAL_OFFSET).parse::<i64>().is_ok());
    assert_eq!(h(DeadLetterHeader::ERROR_CLASS), class);
    assert!(!h(DeadLetterHeader::ERROR_MESSAGE).is_empty());
    assert_eq!(h(DeadLetterHeader::ATTEMPTS), attempts);
    assert!(OffsetDateTime::parse(h(DeadLetterHeader::FIRST_FAILURE_TIME), &Rfc3339).is_ok());
    assert!(OffsetDateTime::parse(h(DeadLetterHeader::DEAD_LETTERED_TIME), &Rfc3339).is_ok());
    assert!(!h(DeadLetterHeader::CONSUMER_GROUP).is_empty());
    assert_eq!(h(header_names::TRACEPARENT), TRACEPARENT, "the original trace context is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_and_the_partition_moves_on() {
    let kafka = TestKafka::with_topics(&[TOPIC], 3).await;
    let handler = ScriptedHandler::new("only", |message| match sequence_number(message) {
        13 => Behaviour::FailPermanently,
        66 => Behaviour::Panic,
        _ => Behaviour::Succeed,
    });
    let member = start_member(&kafka, settings("poison", fast_retries()), handler.clone()).await;

    // Every record has the same key, so all share one partition, in this order.
    let order = new_order();
    let key = order.to_string();
    let topic = kafka.names().physical(TOPIC);
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("malformed-envelope", b"\x00\xffnot json at all".to_vec()),
        ("unknown-type", tampered(order, "type", "OrderTeleported".into())),
        ("unsupported-version", tampered(order, "schemaversion", "9.0".into())),
        ("invalid-payload", tampered(order, "data", serde_json::json!({"step": 42}))),
    ];
    for (_, bytes) in &poison {
        kafka.produce_raw(&topic, &key, bytes, traced()).await;
    }
    // A message under the wrong key, and one the handler rejects or panics on.
    kafka.produce_raw(&topic, &key, &encode(&numbered(new_order(), 1)).unwrap(), traced()).await;
    for seq in [13, 66] {
        let mut record = OutgoingRecord::for_envelope(&numbered(order, seq), &kafka.names()).unwrap();
        record.headers.insert(header_names::TRACEPARENT, TRACEPARENT);
        kafka.publisher().publish(&record).await.unwrap();
    }
    let good = OutgoingRecord::for_envelope(&numbered(order, 100), &kafka.names()).unwrap();
    kafka.publisher().publish(&good).await.unwrap();

    eventually(Duration::from_secs(20), "the good record after the poison to be handled", || {
        let handled = handler.handled();
        async move { handled.iter().any(|h| h.seq == 100).then_some(()) }
    })
    .await;

    let dead = kafka.read(&kafka.names().dead_letter(TOPIC), 7, Duration::from_secs(10)).await;
    let expected = [
        "malformed-envelope",
        "unknown-type",
        "unsupported-version",
        "invalid-payload",
        "key-mismatch",
        "rejected",
        "handler-panicked",
    ];
    for (record, class) in dead.iter().zip(expected) {
        assert_dead_letter(record, &topic, class, "1");
    }
    assert_eq!(dead[0].payload(), Some(&poison[0].1[..]), "the original bytes are kept");
    assert_eq!(dead[0].key(), Some(key.as_bytes()), "the original key is kept");
    let seqs: Vec<u32> = handler.handled().iter().map(|h| h.seq).collect();
    assert_eq!(seqs, [100], "only the good record was handled");
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_on_a_topic_it_does_not_belong_to_is_dead_lettered() {
    let orders_topic = checkout_messages::Topic::OrderEvents;
    let kafka = TestKafka::with_topics(&[orders_topic], 1).await;
    let handler = ScriptedHandler::always_succeeding("only");
    let group = checkout_kafka::ConsumerSettings::new("wrong-topic", [orders_topic]);
    let member = start_member(&kafka, group, handler.clone()).await;

    // What a producer bug looks like: a saga event written to order.events.
    let mut misrouted = OutgoingRecord::for_envelope(&numbered(new_order(), 1), &kafka.names()).unwrap();
    misrouted.topic = kafka.names().physical(orders_topic);
    kafka.publisher().publish(&misrouted).await.unwrap();

    let dead = kafka.read(&kafka.names().dead_letter(orders_topic), 1, Duration::from_secs(20)).await;
    assert_eq!(header(&dead[0], DeadLetterHeader::ERROR_CLASS), Some("wrong-topic"));
    assert!(handler.handled().is_empty());
    member.stop().await;
}
