use checkout_messages::payloads::saga::SagaStepName;
use serde::{Deserialize, Serialize};

/// A step of the saga: forward steps in order, then compensations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    ReserveInventory,
    AuthorizePayment,
    /// Before the pivot, so that no reservation can expire once the order is
    /// confirmed: the stock is sold before the customer is promised it, and
    /// a compensation that follows puts it back. Sent beside
    /// `AuthorizePayment`, as neither needs the other.
    CommitInventory,
    /// The pivot: once the order is confirmed the saga only moves forward.
    ConfirmOrder,
    /// Sent beside `NotifyCustomer`: the customer is told of the confirmed
    /// order while the money is taken.
    CapturePayment,
    NotifyCustomer,
    VoidPayment,
    ReleaseInventory,
    CancelOrder,
    NotifyCancellation,
}

impl Step {
    pub const FORWARD: [Self; 6] = [
        Self::ReserveInventory,
        Self::AuthorizePayment,
        Self::CommitInventory,
        Self::ConfirmOrder,
        Self::CapturePayment,
        Self::NotifyCustomer,
    ];

    pub const COMPENSATIONS: [Self; 4] =
        [Self::VoidPayment, Self::ReleaseInventory, Self::CancelOrder, Self::NotifyCancellation];

    /// The step named `text` (as [`Step::as_str`] writes it).
    pub fn parse(text: &str) -> Option<Self> {
        Self::FORWARD.into_iter().chain(Self::COMPENSATIONS).find(|step| step.as_str() == text)
    }

    /// Before the pivot, a failure is compensated; from the pivot on, it is retried.
    pub fn is_before_pivot(self) -> bool {
        matches!(self, Self::ReserveInventory | Self::AuthorizePayment | Self::CommitInventory)
    }

    pub fn is_compensation(self) -> bool {
        Self::COMPENSATIONS.contains(&self)
    }

    pub fn wire_name(self) -> SagaStepName {
        match self {
            Self::ReserveInventory => SagaStepName::ReserveInventory,
            Self::AuthorizePayment => SagaStepName::AuthorizePayment,
            Self::ConfirmOrder => SagaStepName::ConfirmOrder,
            Self::CapturePayment => SagaStepName::CapturePayment,
            Self::CommitInventory => SagaStepName::CommitInventory,
            Self::NotifyCustomer => SagaStepName::NotifyCustomer,
            Self::VoidPayment => SagaStepName::VoidPayment,
            Self::ReleaseInventory => SagaStepName::ReleaseInventory,
            Self::CancelOrder => SagaStepName::CancelOrder,
            Self::NotifyCancellation => SagaStepName::NotifyCancellation,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReserveInventory => "reserve_inventory",
            Self::AuthorizePayment => "authorize_payment",
            Self::ConfirmOrder => "confirm_order",
            Self::CapturePayment => "capture_payment",
            Self::CommitInventory => "commit_inventory",
            Self::NotifyCustomer => "notify_customer",
            Self::VoidPayment => "void_payment",
            Self::ReleaseInventory => "release_inventory",
            Self::CancelOrder => "cancel_order",
            Self::NotifyCancellation => "notify_cancellation",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
