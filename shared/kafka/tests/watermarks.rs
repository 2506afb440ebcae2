//! Where partitions end, asked of the real broker in one request: the ends
//! agree with the broker's per-partition watermarks, follow new records while
//! the partition lists are cached, and a topic that does not exist is an error.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use checkout_kafka::{OutgoingRecord, Partition, Publisher, RecordHeaders, ReplayError, Watermarks};
use checkout_messages::Topic;
use checkout_testkit::TestKafka;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The ends as librdkafka reports them partition by partition.
fn watermarks_one_by_one(kafka: &TestKafka, topics: &[String]) -> BTreeMap<Partition, i64> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &kafka.settings.bootstrap_servers).create().unwrap();
    let mut ends = BTreeMap::new();
    for topic in topics {
        for partition in 0..3 {
            let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)).unwrap();
            ends.insert((topic.clone(), partition), high);
        }
    }
    ends
}

async fn produce(publisher: &Publisher, topic: &str, keys: std::ops::Range<usize>) {
    for key in keys {
        let record = OutgoingRecord {
            topic: topic.into(),
            key: Some(format!("order-{key}").into_bytes()),
            payload: b"{}".to_vec(),
            headers: RecordHeaders::default(),
        };
        publisher.publish(&record).await.unwrap();
    }
}

#[tokio::test]
async fn ends_agree_with_each_partitions_watermark_and_follow_new_records() {
    let kafka = TestKafka::with_topics(&[Topic::OrderEvents, Topic::PaymentEvents], 3).await;
    let names = kafka.names();
    let topics = vec![names.physical(Topic::OrderEvents), names.physical(Topic::PaymentEvents)];
    let watermarks = Watermarks::new(&kafka.settings).unwrap();
    let publisher = kafka.publisher();

    let empty = watermarks.ends(&topics).await.unwrap();
    assert_eq!(empty.len(), 6, "every partition of both topics: {empty:?}");
    assert!(empty.values().all(|&end| end == 0), "nothing written yet: {empty:?}");

    produce(&publisher, &topics[0], 0..17).await;
    produce(&publisher, &topics[1], 0..5).await;
    let ends = watermarks.ends(&topics).await.unwrap();
    assert_eq!(ends, watermarks_one_by_one(&kafka, &topics));
    assert_eq!(ends.iter().filter(|((t, _), _)| *t == topics[0]).map(|(_, end)| end).sum::<i64>(), 17);
    assert_eq!(ends.iter().filter(|((t, _), _)| *t == topics[1]).map(|(_, end)| end).sum::<i64>(), 5);

    // The partition lists are cached now; the ends still move.
    produce(&publisher, &topics[1], 5..12).await;
    let later = watermarks.ends(&topics).await.unwrap();
    assert_eq!(later, watermarks_one_by_one(&kafka, &topics));
    assert_eq!(later.iter().filter(|((t, _), _)| *t == topics[1]).map(|(_, end)| end).sum::<i64>(), 12);
}

#[tokio::test]
async fn a_topic_that_does_not_exist_is_an_error() {
    let kafka = TestKafka::with_topics(&[Topic::OrderEvents], 1).await;
    let missing = format!("{}no-such-topic", kafka.settings.topic_prefix);
    let result = Watermarks::new(&kafka.settings).unwrap().ends(std::slice::from_ref(&missing)).await;
    assert!(matches!(&result, Err(ReplayError::NoSuchTopic(topic)) if *topic == missing), "{result:?}");
}
