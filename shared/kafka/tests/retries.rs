//! Transient failures are retried with backoff; a failure that outlasts the
//! retry policy ends in the dead-letter topic and the partition moves on.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_kafka::{DeadLetterHeader, OutgoingRecord};
use checkout_testkit::{TestKafka, eventually, header};
use common::{
    Behaviour, ScriptedHandler, TOPIC, fast_retries, new_order, numbered, sequence_number, settings, start_member,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_and_then_succeeds() {
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let handler =
        ScriptedHandler::new(
            "only",
            |message| {
                if message.attempt < 3 { Behaviour::FailTransiently } else { Behaviour::Succeed }
            },
        );
    let member = start_member(&kafka, settings("retry-then-succeed", fast_retries(5)), handler.clone()).await;
    let record = OutgoingRecord::for_envelope(&numbered(new_order(), 1), &kafka.names()).unwrap();
    kafka.publisher().publish(&record).await.unwrap();

    let handled = eventually(Duration::from_secs(20), "the record to be handled", || {
        let handled = handler.handled();
        async move { handled.first().cloned() }
    })
    .await;
    assert_eq!(handled.attempt, 3, "two transient failures, then success");
    assert_eq!(*handler.started.lock().unwrap(), 3);
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_persists_is_dead_lettered_after_the_configured_attempts() {
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let handler = ScriptedHandler::new("only", |message| match sequence_number(message) {
        1 => Behaviour::FailTransiently,
        _ => Behaviour::Succeed,
    });
    let member = start_member(&kafka, settings("retry-exhausted", fast_retries(4)), handler.clone()).await;
    let order = new_order();
    for seq in [1, 2] {
        let record = OutgoingRecord::for_envelope(&numbered(order, seq), &kafka.names()).unwrap();
        kafka.publisher().publish(&record).await.unwrap();
    }

    let dead = kafka.read(&kafka.names().dead_letter(TOPIC), 1, Duration::from_secs(20)).await;
    assert_eq!(header(&dead[0], DeadLetterHeader::ERROR_CLASS), Some("retries-exhausted"));
    assert_eq!(header(&dead[0], DeadLetterHeader::ATTEMPTS), Some("4"));
    assert!(header(&dead[0], DeadLetterHeader::ERROR_MESSAGE).unwrap().contains("database is restarting"));
    eventually(Duration::from_secs(10), "the next record to be handled", || {
        let handled = handler.handled();
        async move { handled.iter().any(|h| h.seq == 2).then_some(()) }
    })
    .await;
    assert_eq!(*handler.started.lock().unwrap(), 5, "four attempts at the first record, one at the second");
    member.stop().await;
}
