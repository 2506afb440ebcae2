use checkout_domain::{CardToken, EmailAddress, Money, OrderLines, Pricing};
use checkout_messages::payloads::order::CancellationReason;

/// What the saga asks of a participant. The orchestrator turns each into
/// the message that carries it; the saga itself knows nothing of envelopes
/// or topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    ReserveInventory {
        lines: OrderLines,
    },
    CommitInventory,
    ReleaseInventory,
    AuthorizePayment {
        amount: Money,
        card_token: CardToken,
    },
    CapturePayment {
        amount: Money,
    },
    VoidPayment,
    ConfirmOrder {
        pricing: Pricing,
    },
    /// `pricing` when the inventory had quoted prices before the saga gave up.
    CancelOrder {
        reason: CancellationReason,
        pricing: Option<Pricing>,
    },
    NotifyOrderConfirmed {
        email: EmailAddress,
        pricing: Pricing,
    },
    NotifyOrderCancelled {
        email: EmailAddress,
        reason: CancellationReason,
    },
}

impl Command {
    /// The command's name, the same as the type of the message carrying it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ReserveInventory { .. } => "ReserveInventory",
            Self::CommitInventory => "CommitInventory",
            Self::ReleaseInventory => "ReleaseInventory",
            Self::AuthorizePayment { .. } => "AuthorizePayment",
            Self::CapturePayment { .. } => "CapturePayment",
            Self::VoidPayment => "VoidPayment",
            Self::ConfirmOrder { .. } => "ConfirmOrder",
            Self::CancelOrder { .. } => "CancelOrder",
            Self::NotifyOrderConfirmed { .. } => "NotifyOrderConfirmed",
            Self::NotifyOrderCancelled { .. } => "NotifyOrderCancelled",
        }
    }
}
