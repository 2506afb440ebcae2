//! Ordering is per key, not per partition: records of different orders on
//! one partition are handled concurrently, records of one order strictly in
//! order, and the committed offset never passes an unfinished record.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use checkout_domain::OrderId;
use checkout_kafka::{ConsumerSettings, OutgoingRecord};
use checkout_testkit::{TestKafka, eventually};
use common::{
    Behaviour, ScriptedHandler, TOPIC, fast_retries, new_order, numbered, sequence_number, settings, start_member,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

async fn publish_all(kafka: &TestKafka, records: &[(OrderId, u32)]) {
    let publisher = kafka.publisher();
    let mut deliveries = Vec::new();
    for &(order, seq) in records {
        let record = OutgoingRecord::for_envelope(&numbered(order, seq), &kafka.names()).unwrap();
        deliveries.push(publisher.enqueue(&record).await.unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_order_does_not_hold_up_the_other_orders_of_its_partition() {
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let (slow, quick) = (new_order(), new_order());
    let released = Arc::new(AtomicBool::new(false));
    let handler = ScriptedHandler::new("only", {
        let released = Arc::clone(&released);
        move |message| {
            if message.envelope.subject == slow && !released.load(Ordering::SeqCst) {
                Behaviour::FailTransiently
            } else {
                Behaviour::Succeed
            }
        }
    });
    let member = start_member(&kafka, settings("slow-order", fast_retries()), handler.clone()).await;
    let mut records = vec![(slow, 1), (slow, 2)];
    records.extend((1..=5).map(|seq| (quick, seq)));
    publish_all(&kafka, &records).await;

    eventually(Duration::from_secs(20), "the quick order's records behind the slow one", || {
        let handled = handler.handled();
        async move { (handled.iter().filter(|h| h.order == quick).count() == 5).then_some(()) }
    })
    .await;
    assert!(handler.handled().iter().all(|h| h.order != slow), "the slow order's second record waited for its first");

    released.store(true, Ordering::SeqCst);
    let seqs = eventually(Duration::from_secs(20), "the slow order to be handled", || {
        let handled = handler.handled();
        async move {
            let seqs: Vec<u32> = handled.iter().filter(|h| h.order == slow).map(|h| h.seq).collect();
            (seqs.len() == 2).then_some(seqs)
        }
    })
    .await;
    assert_eq!(seqs, [1, 2]);
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_offset_stops_at_the_first_unfinished_record() {
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let (before, stuck, after) = (new_order(), new_order(), new_order());
    let outage = Arc::new(AtomicBool::new(true));
    let script = {
        let outage = Arc::clone(&outage);
        move |message: &checkout_kafka::Incoming| {
            if message.envelope.subject == stuck && outage.load(Ordering::SeqCst) {
                Behaviour::FailTransiently
            } else {
                Behaviour::Succeed
            }
        }
    };
    let first = ScriptedHandler::new("first", script);
    let group = settings("contiguous-commit", fast_retries());
    let member = start_member(&kafka, group.clone(), first.clone()).await;
    let mut records = vec![(before, 1), (stuck, 1)];
    records.extend((1..=5).map(|seq| (after, seq)));
    publish_all(&kafka, &records).await;
    eventually(Duration::from_secs(20), "everything but the stuck record", || {
        let handled = first.handled();
        async move { (handled.len() == 6).then_some(()) }
    })
    .await;
    // Shutdown commits what is contiguous: the record before the stuck one.
    member.stop().await;

    outage.store(false, Ordering::SeqCst);
    let second = first.sibling("second");
    let member = start_member(&kafka, group, second.clone()).await;
    let redelivered = eventually(Duration::from_secs(20), "the stuck record to be redelivered", || {
        let handled = second.handled();
        async move {
            let again: Vec<_> = handled.iter().filter(|h| h.member == "second").cloned().collect();
            (again.iter().filter(|h| h.order == after).count() == 5 && again.iter().any(|h| h.order == stuck))
                .then_some(again)
        }
    })
    .await;
    assert!(redelivered.iter().all(|h| h.order != before), "the finished prefix was committed: {redelivered:?}");
    member.stop().await;
}

/// A partition's worth of records over a few orders, each handled after a
/// random delay.
fn workloads() -> impl Strategy<Value = (usize, Vec<(usize, u64)>)> {
    (2_usize..8).prop_flat_map(|orders| (Just(orders), prop::collection::vec((0..orders, 0_u64..15), 20..80)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_holds_under_random_handler_delays() {
    let kafka = TestKafka::with_topics(&[TOPIC], 2).await;
    // Each case is a real run against the broker: a few cases, each on a group of its own.
    let mut runner = TestRunner::new(Config { cases: 6, failure_persistence: None, ..Config::default() });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let runtime = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&workloads(), |(orders, records)| {
            let group = format!("random-delays-{}", case.fetch_add(1, Ordering::SeqCst));
            runtime.block_on(one_case(&kafka, &group, orders, &records));
            Ok(())
        })
    });
    result.unwrap();
}

async fn one_case(kafka: &TestKafka, group: &str, orders: usize, records: &[(usize, u64)]) {
    let ids: Vec<OrderId> = (0..orders).map(|_| new_order()).collect();
    let mut next_seq = vec![0_u32; orders];
    let mut delays: HashMap<(OrderId, u32), Duration> = HashMap::new();
    let mut produced = Vec::new();
    for &(order, delay_ms) in records {
        next_seq[order] += 1;
        delays.insert((ids[order], next_seq[order]), Duration::from_millis(delay_ms));
        produced.push((ids[order], next_seq[order]));
    }
    let handler = ScriptedHandler::new("only", move |message| {
        let delay = delays.get(&(message.envelope.subject, sequence_number(message))).copied().unwrap_or_default();
        Behaviour::SucceedAfter(delay)
    });
    let member =
        start_member(kafka, ConsumerSettings { max_in_flight: 16, ..settings(group, fast_retries()) }, handler.clone())
            .await;
    publish_all(kafka, &produced).await;
    let handled = eventually(Duration::from_secs(30), "every record to be handled", || {
        let handled = handler.handled();
        let mine: Vec<_> = handled.into_iter().filter(|h| ids.contains(&h.order)).collect();
        let expected = produced.len();
        async move { (mine.len() >= expected).then_some(mine) }
    })
    .await;
    for (index, &order) in ids.iter().enumerate() {
        let seqs: Vec<u32> = handled.iter().filter(|h| h.order == order).map(|h| h.seq).collect();
        assert_eq!(seqs, (1..=next_seq[index]).collect::<Vec<_>>(), "order {order} handled out of order");
    }
    member.stop().await;
}
