//! Stopping a consumer mid-stream finishes the records in hand, commits, and
//! leaves the rest for the next member: nothing is lost, nothing handled twice.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use checkout_testkit::{TestKafka, eventually};
use common::{Behaviour, ScriptedHandler, TOPIC, fast_retries, publish_numbered, settings, start_member};

const RECORDS: u32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_stream_loses_nothing_and_handles_nothing_twice() {
    let kafka = TestKafka::with_topics(&[TOPIC], 3).await;
    let slow = ScriptedHandler::new("before", |_| Behaviour::SucceedAfter(Duration::from_millis(5)));
    let group = settings("shutdown", fast_retries());
    let before = start_member(&kafka, group.clone(), slow.clone()).await;

    publish_numbered(&kafka, 10, RECORDS).await;

    eventually(Duration::from_secs(20), "a first part of the stream to be handled", || {
        let count = slow.handled().len();
        async move { (count >= 30).then_some(()) }
    })
    .await;
    before.stop().await;
    let first_run = slow.handled();
    assert_eq!(
        *slow.started.lock().unwrap(),
        first_run.len(),
        "every record the handler started was finished before the consumer stopped"
    );
    assert!(first_run.len() < RECORDS as usize, "the stream was stopped midway");

    let after = ScriptedHandler::always_succeeding("after");
    let second = start_member(&kafka, group, after.clone()).await;
    let first_ids: HashSet<_> = first_run.iter().map(|h| h.message_id).collect();
    let second_run = eventually(Duration::from_secs(30), "the rest of the stream to be handled", || {
        let handled = after.handled();
        let first_ids = first_ids.clone();
        async move {
            let all: HashSet<_> = handled.iter().map(|h| h.message_id).chain(first_ids).collect();
            (all.len() == RECORDS as usize).then_some(handled)
        }
    })
    .await;
    let twice: Vec<_> = second_run.iter().filter(|h| first_ids.contains(&h.message_id)).collect();
    assert!(twice.is_empty(), "{} records handled before shutdown were redelivered", twice.len());
    second.stop().await;
}
