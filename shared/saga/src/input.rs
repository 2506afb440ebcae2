use checkout_domain::{Money, Pricing, Sku};
use checkout_messages::Message;
use checkout_messages::payloads::inventory::RejectionCode;
use checkout_messages::payloads::notification::NotificationKind;
use checkout_messages::payloads::payment::DeclineCode;

/// What can happen to a running saga: a participant's reply, or time passing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    InventoryReserved {
        pricing: Pricing,
    },
    InventoryRejected {
        code: RejectionCode,
        sku: Sku,
        detail: String,
    },
    InventoryReleased,
    InventoryCommitted,
    InventoryCommitRejected {
        detail: String,
    },
    ReservationExpired,
    PaymentAuthorized {
        authorization_id: String,
        amount: Money,
    },
    PaymentDeclined {
        code: DeclineCode,
        detail: String,
    },
    PaymentVoided,
    PaymentCaptured {
        amount: Money,
    },
    OrderConfirmed,
    OrderCancelled,
    CustomerNotified {
        kind: NotificationKind,
    },
    /// The timer fired; the saga checks whether its deadline really passed.
    DeadlinePassed,
    /// The customer asked to cancel the order while it was pending.
    CancelRequested {
        reason: Option<String>,
    },
}

impl Input {
    /// The input a message stands for, or `None` for messages the saga does not consume.
    pub fn from_message(message: &Message) -> Option<Self> {
        Some(match message {
            Message::InventoryReserved(m) => Self::InventoryReserved { pricing: m.pricing.clone() },
            Message::InventoryReservationRejected(m) => {
                Self::InventoryRejected { code: m.code, sku: m.sku.clone(), detail: m.detail.clone() }
            }
            Message::InventoryReleased(_) => Self::InventoryReleased,
            Message::InventoryCommitted(_) => Self::InventoryCommitted,
            Message::InventoryCommitRejected(m) => Self::InventoryCommitRejected { detail: m.detail.clone() },
            Message::InventoryReservationExpired(_) => Self::ReservationExpired,
            Message::PaymentAuthorized(m) => {
                Self::PaymentAuthorized { authorization_id: m.authorization_id.clone(), amount: m.amount }
            }
            Message::PaymentDeclined(m) => Self::PaymentDeclined { code: m.code, detail: m.detail.clone() },
            Message::PaymentVoided(_) => Self::PaymentVoided,
            Message::PaymentCaptured(m) => Self::PaymentCaptured { amount: m.amount },
            Message::OrderConfirmed(_) => Self::OrderConfirmed,
            Message::OrderCancelled(_) => Self::OrderCancelled,
            Message::CustomerNotified(m) => Self::CustomerNotified { kind: m.kind },
            Message::OrderCancellationRequested(m) => Self::CancelRequested { reason: m.reason.clone() },
            _ => return None,
        })
    }

    /// A short name for logs and the transition history.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InventoryReserved { .. } => "InventoryReserved",
            Self::InventoryRejected { .. } => "InventoryReservationRejected",
            Self::InventoryReleased => "InventoryReleased",
            Self::InventoryCommitted => "InventoryCommitted",
            Self::InventoryCommitRejected { .. } => "InventoryCommitRejected",
            Self::ReservationExpired => "InventoryReservationExpired",
            Self::PaymentAuthorized { .. } => "PaymentAuthorized",
            Self::PaymentDeclined { .. } => "PaymentDeclined",
            Self::PaymentVoided => "PaymentVoided",
            Self::PaymentCaptured { .. } => "PaymentCaptured",
            Self::OrderConfirmed => "OrderConfirmed",
            Self::OrderCancelled => "OrderCancelled",
            Self::CustomerNotified { .. } => "CustomerNotified",
            Self::DeadlinePassed => "DeadlinePassed",
            Self::CancelRequested { .. } => "OrderCancellationRequested",
        }
    }
}
