//! Fixed sample messages for the golden tests.

use checkout_domain::{
    CardToken, Currency, CustomerId, EmailAddress, Money, OrderId, OrderLine, OrderLines, PricedLine, Pricing,
    Quantity, Sku,
};
use checkout_messages::payloads::inventory::*;
use checkout_messages::payloads::notification::*;
use checkout_messages::payloads::order::*;
use checkout_messages::payloads::payment::*;
use checkout_messages::payloads::saga::*;
use checkout_messages::{Envelope, Message, MessageId, MessageType, Source};
use time::macros::datetime;
use uuid::Uuid;

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR).unwrap()
}

fn pricing() -> Pricing {
    Pricing::new(vec![
        PricedLine {
            sku: Sku::parse("MUG-BLACK").unwrap(),
            quantity: Quantity::new(2).unwrap(),
            unit_price: eur(1250),
        },
        PricedLine { sku: Sku::parse("TEE-M").unwrap(), quantity: Quantity::new(1).unwrap(), unit_price: eur(1999) },
    ])
    .unwrap()
}

fn lines() -> OrderLines {
    OrderLines::new(vec![
        OrderLine { sku: Sku::parse("MUG-BLACK").unwrap(), quantity: Quantity::new(2).unwrap() },
        OrderLine { sku: Sku::parse("TEE-M").unwrap(), quantity: Quantity::new(1).unwrap() },
    ])
    .unwrap()
}

fn email() -> EmailAddress {
    EmailAddress::parse("ada@example.com").unwrap()
}

fn declined() -> CancellationReason {
    CancellationReason { code: CancellationCode::PaymentDeclined, detail: "card declined: insufficient funds".into() }
}

/// One representative payload per type. The match is exhaustive, so a new
/// message type does not compile until it has a sample (and thus a golden file).
pub fn sample_payload(message_type: MessageType) -> Message {
    match message_type {
        MessageType::OrderPlaced => OrderPlaced {
            customer_id: CustomerId::parse("cust-42").unwrap(),
            email: email(),
            lines: lines(),
            card_token: CardToken::parse("tok_visa").unwrap(),
        }
        .into(),
        MessageType::ConfirmOrder => ConfirmOrder { pricing: pricing() }.into(),
        MessageType::OrderConfirmed => OrderConfirmed { total: eur(4499) }.into(),
        MessageType::CancelOrder => CancelOrder { reason: declined(), pricing: Some(pricing()) }.into(),
        MessageType::OrderCancelled => OrderCancelled { reason: declined() }.into(),
        MessageType::OrderCancellationRequested => {
            OrderCancellationRequested { reason: Some("ordered the wrong size".into()) }.into()
        }
        MessageType::ReserveInventory => ReserveInventory { lines: lines() }.into(),
        MessageType::InventoryReserved => {
            InventoryReserved { pricing: pricing(), expires_at: datetime!(2026-11-23 10:15:00 UTC) }.into()
        }
        MessageType::InventoryReservationRejected => InventoryReservationRejected {
            code: RejectionCode::OutOfStock,
            sku: Sku::parse("TEE-M").unwrap(),
            detail: "TEE-M: 1 requested, 0 available".into(),
        }
        .into(),
        MessageType::ReleaseInventory => ReleaseInventory {}.into(),
        MessageType::InventoryReleased => InventoryReleased {}.into(),
        MessageType::CommitInventory => CommitInventory {}.into(),
        MessageType::InventoryCommitted => InventoryCommitted {}.into(),
        MessageType::InventoryCommitRejected => {
            InventoryCommitRejected { detail: "hold expired and TEE-M is out of stock".into() }.into()
        }
        MessageType::InventoryReservationExpired => InventoryReservationExpired {}.into(),
        MessageType::AuthorizePayment => {
            AuthorizePayment { amount: eur(4499), card_token: CardToken::parse("tok_visa").unwrap() }.into()
        }
        MessageType::PaymentAuthorized => {
            PaymentAuthorized { authorization_id: "auth_0190d5c4".into(), amount: eur(4499) }.into()
        }
        MessageType::PaymentDeclined => {
            PaymentDeclined { code: DeclineCode::InsufficientFunds, detail: "insufficient funds".into() }.into()
        }
        MessageType::CapturePayment => CapturePayment { amount: eur(4499) }.into(),
        MessageType::PaymentCaptured => PaymentCaptured { amount: eur(4499) }.into(),
        MessageType::VoidPayment => VoidPayment {}.into(),
        MessageType::PaymentVoided => PaymentVoided {}.into(),
        MessageType::RefundPayment => RefundPayment { amount: eur(4499) }.into(),
        MessageType::PaymentRefunded => PaymentRefunded { amount: eur(4499) }.into(),
        MessageType::NotifyOrderConfirmed => NotifyOrderConfirmed { email: email(), pricing: pricing() }.into(),
        MessageType::NotifyOrderCancelled => NotifyOrderCancelled { email: email(), reason: declined() }.into(),
        MessageType::CustomerNotified => CustomerNotified { kind: NotificationKind::OrderConfirmed }.into(),
        MessageType::SagaStepRecorded => SagaStepRecorded {
            earlier: vec![StepEntry {
                step: SagaStepName::ReserveInventory,
                outcome: StepOutcome::Succeeded,
                attempt: 1,
                detail: None,
                at: Some(time::macros::datetime!(2026-11-23 10:15:00.125 UTC)),
            }],
            step: SagaStepName::AuthorizePayment,
            outcome: StepOutcome::Succeeded,
            attempt: 1,
            detail: Some("authorized EUR 44.99".into()),
            at: Some(time::macros::datetime!(2026-11-23 10:15:00.250 UTC)),
            finished: false,
        }
        .into(),
    }
}

/// A sample envelope with fixed ids and time around `payload`.
pub fn sample_envelope(payload: Message) -> Envelope {
    let first = Envelope::first(
        MessageId::from_uuid(Uuid::from_u128(0x0190_d5c4_0000_7000_8000_0000_0000_0001)),
        Source::service("order"),
        OrderId::from_uuid(Uuid::from_u128(0x0190_d5c4_0000_7000_8000_0000_0000_00aa)),
        datetime!(2026-11-23 10:00:00 UTC),
        (),
    );
    first.caused(
        MessageId::from_uuid(Uuid::from_u128(0x0190_d5c4_0000_7000_8000_0000_0000_0002)),
        Source::service("orchestrator"),
        datetime!(2026-11-23 10:00:00.125 UTC),
        payload,
    )
}
