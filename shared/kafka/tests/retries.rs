//! Transient failures are retried with backoff for as long as they last:
//! never dead-lettered, their partition paused meanwhile, the other
//! partitions unaffected.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use checkout_kafka::{ConsumerSettings, OutgoingRecord};
use checkout_testkit::{TestKafka, eventually};
use common::{Behaviour, ScriptedHandler, TOPIC, fast_retries, new_order, numbered, settings, start_member};

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
    let member = start_member(&kafka, settings("retry-then-succeed", fast_retries()), handler.clone()).await;
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
async fn a_failure_that_lasts_is_waited_out_never_dead_lettered_and_the_other_partitions_go_on() {
    let kafka = TestKafka::with_topics(&[TOPIC], 2).await;
    let stuck = new_order();
    let outage = Arc::new(AtomicBool::new(true));
    let handler = ScriptedHandler::new("only", {
        let outage = Arc::clone(&outage);
        move |message| {
            if message.envelope.subject == stuck && outage.load(Ordering::SeqCst) {
                Behaviour::FailTransiently
            } else {
                Behaviour::Succeed
            }
        }
    });
    let group = ConsumerSettings { partition_buffer: 4, ..settings("retry-until-clear", fast_retries()) };
    let member = start_member(&kafka, group, handler.clone()).await;

    // Far more records than the partition may buffer wait behind the stuck one.
    let publisher = kafka.publisher();
    let mut stuck_partition = None;
    for seq in 1..=30 {
        let record = OutgoingRecord::for_envelope(&numbered(stuck, seq), &kafka.names()).unwrap();
        stuck_partition = Some(publisher.publish(&record).await.unwrap().partition);
    }
    // An order on the other partition is handled meanwhile.
    let other = loop {
        let order = new_order();
        let record = OutgoingRecord::for_envelope(&numbered(order, 1), &kafka.names()).unwrap();
        if Some(publisher.publish(&record).await.unwrap().partition) != stuck_partition {
            break order;
        }
    };
    eventually(Duration::from_secs(20), "the other partition's record to be handled", || {
        let handled = handler.handled();
        async move { handled.iter().any(|h| h.order == other).then_some(()) }
    })
    .await;
    // Well past the six attempts after which this used to be dead-lettered.
    eventually(Duration::from_secs(20), "a dozen attempts at the stuck record", || {
        let started = *handler.started.lock().unwrap();
        async move { (started >= 12).then_some(()) }
    })
    .await;
    let (waiting, error) = member.status.waiting_out_failures().expect("readiness sees the wait");
    assert_eq!(waiting, 1);
    assert!(error.contains("database is restarting"), "{error}");
    assert!(handler.handled().iter().all(|h| h.order != stuck), "nothing behind the stuck record overtook it");

    outage.store(false, Ordering::SeqCst);
    let handled = eventually(Duration::from_secs(20), "every stuck record to be handled", || {
        let handled = handler.handled();
        async move {
            let seqs: Vec<u32> = handled.iter().filter(|h| h.order == stuck).map(|h| h.seq).collect();
            (seqs.len() == 30).then_some(seqs)
        }
    })
    .await;
    assert_eq!(handled, (1..=30).collect::<Vec<_>>(), "in order, each once");
    assert!(member.status.waiting_out_failures().is_none());
    assert_eq!(kafka.record_count(&kafka.names().dead_letter(TOPIC)), 0, "a transient failure is never a dead letter");
    member.stop().await;
}
