//! The order's fold and the read model's fold, property-tested without I/O:
//! streams are made by the order's own decisions, as the service makes them.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use checkout_domain::arbitrary::{card_token, customer_id, email, order_id, order_lines};
use checkout_domain::{Currency, Money, OrderId, PricedLine, Pricing};
use checkout_messages::payloads::order::{
    CancellationCode, CancellationReason, OrderCancellationRequested, OrderCancelled, OrderConfirmed, OrderPlaced,
};
use checkout_messages::payloads::saga::{SagaStepName, SagaStepRecorded, StepEntry, StepOutcome};
use checkout_messages::{Envelope, Message, MessageId, Source};
use checkout_order::domain::{CancelDecision, NewOrder, Order, OrderEvent, RecordedEvent, Status, Summary};
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// What can happen to an order, in any order and any number of times.
#[derive(Clone, Debug)]
enum Action {
    Steps(u8),
    RequestCancel,
    Confirm,
    Cancel,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0u8..4).prop_map(Action::Steps),
        1 => Just(Action::RequestCancel),
        1 => Just(Action::Confirm),
        1 => Just(Action::Cancel),
    ]
}

fn new_order() -> impl Strategy<Value = NewOrder> {
    (customer_id(), email(), order_lines(), card_token()).prop_map(|(customer_id, email, lines, card_token)| NewOrder {
        customer_id,
        email,
        lines,
        card_token,
    })
}

fn pricing(order: &NewOrder) -> Pricing {
    let lines = order
        .lines
        .iter()
        .map(|line| PricedLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price: Money::new(250, Currency::EUR).unwrap(),
        })
        .collect();
    Pricing::new(lines).unwrap()
}

fn entry(n: u8) -> StepEntry {
    let step = [SagaStepName::ReserveInventory, SagaStepName::AuthorizePayment, SagaStepName::CommitInventory]
        [usize::from(n % 3)];
    StepEntry { step, outcome: StepOutcome::Succeeded, attempt: u32::from(n) + 1, detail: None, at: None }
}

const T0: OffsetDateTime = time::macros::datetime!(2026-12-02 10:00 UTC);

/// The stream the order's decisions make from `actions`, as the store would
/// record it (sequence from 1, strictly increasing times), and every message
/// the service and the orchestrator publish about it.
fn history(id: OrderId, order: &NewOrder, actions: &[Action]) -> (Vec<RecordedEvent>, Vec<Envelope<Message>>) {
    let mut stream: Vec<RecordedEvent> = Vec::new();
    let mut messages = Vec::new();
    let append = |stream: &mut Vec<RecordedEvent>, event: OrderEvent| {
        let seq = stream.len() as u64 + 1;
        let at = T0 + Duration::milliseconds(i64::try_from(seq).unwrap() * 10);
        stream.push(RecordedEvent {
            seq,
            event_id: Uuid::from_u128(u128::from(seq)),
            at,
            causation_id: None,
            correlation_id: Uuid::from_u128(1),
            event,
        });
        (seq, at)
    };
    let message = |seq: Option<u64>, at: OffsetDateTime, payload: Message, n: usize| {
        let envelope = Envelope::first(
            MessageId::from_uuid(Uuid::from_u128(1000 + n as u128)),
            Source::service("test"),
            id,
            at,
            payload,
        );
        match seq {
            Some(seq) => envelope.at_sequence(seq),
            None => envelope,
        }
    };
    let (seq, at) = append(&mut stream, Order::place(order, None));
    let placed = OrderPlaced {
        customer_id: order.customer_id.clone(),
        email: order.email.clone(),
        lines: order.lines.clone(),
        card_token: order.card_token.clone(),
    };
    messages.push(message(Some(seq), at, placed.into(), 0));
    let reason = CancellationReason { code: CancellationCode::CustomerCancelled, detail: "changed my mind".into() };
    for (n, action) in actions.iter().enumerate() {
        let current = Order::fold(id, &stream).unwrap().unwrap();
        let events = match action {
            Action::Steps(k) => {
                let entries: Vec<StepEntry> = (0..=*k).map(entry).collect();
                let reported = T0 + Duration::milliseconds(i64::try_from(n).unwrap() * 10 + 5);
                messages.push(message(
                    None,
                    reported,
                    SagaStepRecorded::of_entries(entries.clone(), false).unwrap().into(),
                    n + 1,
                ));
                vec![Order::record_steps(entries, reported)]
            }
            Action::RequestCancel => match current.request_cancellation(Some("oops".into())) {
                CancelDecision::Request(event) => vec![event],
                _ => Vec::new(),
            },
            Action::Confirm => current.confirm(&pricing(order)).unwrap_or_default(),
            Action::Cancel => current.cancel(&reason, Some(&pricing(order))).unwrap_or_default(),
        };
        for event in events {
            let announced: Option<Message> = match &event {
                OrderEvent::Confirmed { total } => Some(OrderConfirmed { total: *total }.into()),
                OrderEvent::Cancelled { reason } => Some(OrderCancelled { reason: reason.clone() }.into()),
                OrderEvent::CancellationRequested { reason } => {
                    Some(OrderCancellationRequested { reason: reason.clone() }.into())
                }
                _ => None,
            };
            let (seq, at) = append(&mut stream, event);
            if let Some(payload) = announced {
                messages.push(message(Some(seq), at, payload, 100 + stream.len()));
            }
        }
    }
    (stream, messages)
}

fn summary_of<'a>(id: OrderId, messages: impl IntoIterator<Item = &'a Envelope<Message>>) -> Summary {
    let mut summary = Summary::new(id);
    for message in messages {
        summary.apply(message);
    }
    summary
}

proptest! {
    #[test]
    fn every_prefix_of_a_stream_folds_to_a_valid_order(
        id in order_id(), order in new_order(), actions in proptest::collection::vec(action(), 0..24),
    ) {
        let (stream, _) = history(id, &order, &actions);
        let mut finished: Option<Status> = None;
        for end in 1..=stream.len() {
            let folded = Order::fold(id, &stream[..end]).unwrap().unwrap();
            prop_assert_eq!(folded.version, end as u64);
            prop_assert_eq!(folded.updated_at, stream[end - 1].at);
            // A final status never changes, and says what it must.
            if let Some(status) = finished { prop_assert_eq!(folded.status, status); }
            match folded.status {
                Status::Pending => prop_assert!(folded.cancellation.is_none()),
                Status::Confirmed => prop_assert!(folded.total.is_some() && folded.cancellation.is_none()),
                Status::Cancelled => prop_assert!(folded.cancellation.is_some()),
            }
            if folded.status != Status::Pending { finished = Some(folded.status); }
        }
    }

    #[test]
    fn folding_twice_is_folding_once_and_a_snapshot_folds_on(
        id in order_id(), order in new_order(), actions in proptest::collection::vec(action(), 0..24), cut in any::<prop::sample::Index>(),
    ) {
        let (stream, _) = history(id, &order, &actions);
        let once = Order::fold(id, &stream).unwrap();
        let twice: Vec<RecordedEvent> = stream.iter().chain(stream.iter()).cloned().collect();
        prop_assert_eq!(&Order::fold(id, &twice).unwrap(), &once);
        let cut = cut.index(stream.len()) + 1;
        let mut snapshot = Order::fold(id, &stream[..cut]).unwrap().unwrap();
        for event in &stream[cut..] { snapshot.apply(event).unwrap(); }
        prop_assert_eq!(Some(snapshot), once);
    }

    #[test]
    fn the_read_model_row_does_not_depend_on_delivery_order_or_duplicates(
        id in order_id(), order in new_order(), actions in proptest::collection::vec(action(), 0..24),
        shuffle in proptest::collection::vec(any::<prop::sample::Index>(), 0..64),
    ) {
        let (stream, messages) = history(id, &order, &actions);
        let in_order = summary_of(id, &messages);
        // Any redelivery and reordering: a shuffled multiset that holds every message at least once.
        let mut delivered: Vec<&Envelope<Message>> = messages.iter().collect();
        for pick in &shuffle { delivered.push(&messages[pick.index(messages.len())]); }
        let len = delivered.len();
        for (i, pick) in shuffle.iter().enumerate() { delivered.swap(i % len, pick.index(len)); }
        prop_assert_eq!(&summary_of(id, delivered), &in_order);
        // And it agrees with the order itself.
        let folded = Order::fold(id, &stream).unwrap().unwrap();
        prop_assert_eq!(in_order.status, folded.status);
        prop_assert_eq!(in_order.customer_id.as_deref(), Some(folded.customer_id.as_str()));
        prop_assert_eq!(in_order.version, stream.iter().rev().find(|e| !matches!(e.event, OrderEvent::StepsRecorded { .. } | OrderEvent::Priced { .. })).map_or(0, |e| e.seq));
    }
}

fn one_mug() -> NewOrder {
    NewOrder {
        customer_id: checkout_domain::CustomerId::parse("c-1").unwrap(),
        email: checkout_domain::EmailAddress::parse("ada@example.com").unwrap(),
        lines: checkout_domain::OrderLines::new(vec![checkout_domain::OrderLine {
            sku: checkout_domain::Sku::parse("MUG").unwrap(),
            quantity: checkout_domain::Quantity::new(1).unwrap(),
        }])
        .unwrap(),
        card_token: checkout_domain::CardToken::parse("tok_visa").unwrap(),
    }
}

#[test]
fn a_stream_with_a_gap_or_a_second_placing_is_refused() {
    let id = OrderId::from_uuid(Uuid::from_u128(9));
    let (mut stream, _) = history(id, &one_mug(), &[Action::Confirm]);
    let mut gap = stream.clone();
    gap.remove(1);
    assert!(Order::fold(id, &gap).is_err(), "a missing event is not skipped");
    stream.push(RecordedEvent { seq: 4, ..stream[0].clone() });
    assert!(Order::fold(id, &stream).is_err(), "an order is placed once");
    let confirmed = Order::fold(id, &stream[..3]).unwrap().unwrap();
    assert_eq!(confirmed.request_cancellation(None), CancelDecision::Refused);
    assert!(
        confirmed.cancel(&CancellationReason { code: CancellationCode::Other, detail: String::new() }, None).is_err()
    );
}

#[test]
fn timeline_entries_keep_their_own_time_and_older_ones_take_their_reports() {
    let id = OrderId::from_uuid(Uuid::from_u128(10));
    let (mut stream, _) = history(id, &one_mug(), &[]);
    let reported = T0 + Duration::seconds(5);
    let own = T0 + Duration::seconds(2);
    let entries = vec![StepEntry { at: Some(own), ..entry(0) }, entry(1)];
    stream.push(RecordedEvent { seq: 2, at: reported, ..stream[0].clone() });
    stream[1].event = Order::record_steps(entries, reported);
    let order = Order::fold(id, &stream).unwrap().unwrap();
    let times: Vec<OffsetDateTime> = order.timeline.iter().map(|t| t.at).collect();
    assert_eq!(times, [own, reported]);
}
