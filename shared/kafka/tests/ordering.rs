//! Two members of one consumer group share the partitions; each order's
//! messages are still handled in the order they were produced.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use checkout_kafka::OutgoingRecord;
use checkout_testkit::{TestKafka, eventually};
use common::{ScriptedHandler, TOPIC, fast_retries, new_order, numbered, settings, start_member_without_waiting};

const ORDERS: usize = 40;
const MESSAGES_PER_ORDER: u32 = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_holds_across_partitions_with_two_group_members() {
    let kafka = TestKafka::with_topics(&[TOPIC], 4).await;
    let first = ScriptedHandler::always_succeeding("first");
    let second = first.sibling("second");
    let group = settings("ordering", fast_retries());
    let members = [
        start_member_without_waiting(&kafka, group.clone(), first.clone()),
        start_member_without_waiting(&kafka, group, second),
    ];
    // Both members must own partitions before producing, so the work is shared.
    eventually(Duration::from_mins(1), "both members to own partitions", || {
        let owned: Vec<usize> = members.iter().map(|m| m.status.assigned_partitions()).collect();
        async move { (owned.iter().all(|&n| n > 0) && owned.iter().sum::<usize>() == 4).then_some(()) }
    })
    .await;

    // Interleave orders so every partition holds many keys.
    let orders: Vec<_> = (0..ORDERS).map(|_| new_order()).collect();
    let publisher = kafka.publisher();
    let mut pending = Vec::new();
    for seq in 1..=MESSAGES_PER_ORDER {
        for &order in &orders {
            let record = OutgoingRecord::for_envelope(&numbered(order, seq), &kafka.names()).unwrap();
            pending.push(publisher.enqueue(&record).await.unwrap());
        }
    }
    for delivery in pending {
        delivery.await.unwrap();
    }

    let total = ORDERS * MESSAGES_PER_ORDER as usize;
    let handled = eventually(Duration::from_mins(1), "every message to be handled", || {
        let handled = first.handled();
        async move {
            let distinct: HashSet<_> = handled.iter().map(|h| h.message_id).collect();
            (distinct.len() == total).then_some(handled)
        }
    })
    .await;

    // Redelivery may repeat a message, never reorder: the first time each
    // sequence number is seen, it is the next one.
    let mut next: HashMap<_, u32> = orders.iter().map(|&o| (o, 1)).collect();
    for h in &handled {
        let expected = next.get_mut(&h.order).unwrap();
        if h.seq == *expected {
            *expected += 1;
        } else {
            assert!(h.seq < *expected, "order {} saw message {} before {}", h.order, h.seq, expected);
        }
    }
    assert!(next.values().all(|&n| n == MESSAGES_PER_ORDER + 1));
    let members_used: HashSet<_> = handled.iter().map(|h| h.member).collect();
    assert_eq!(members_used.len(), 2, "both members should have handled messages");
    for member in members {
        member.stop().await;
    }
}
