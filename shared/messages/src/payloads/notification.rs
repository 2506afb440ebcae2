//! Messages on `notification.commands` and `notification.events`.

use checkout_domain::{EmailAddress, Pricing};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::order::CancellationReason;

/// Email the customer that the order is confirmed, with what it costs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct NotifyOrderConfirmed {
    pub email: EmailAddress,
    pub pricing: Pricing,
}

/// Email the customer that the order was cancelled, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct NotifyOrderCancelled {
    pub email: EmailAddress,
    pub reason: CancellationReason,
}

/// The email for one order outcome was handed to the SMTP server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct CustomerNotified {
    pub kind: NotificationKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    OrderConfirmed,
    OrderCancelled,
    #[serde(other)]
    Other,
}
