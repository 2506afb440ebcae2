//! Messages on `order.commands` and `order.events`.

use checkout_domain::{CardToken, CustomerId, EmailAddress, Money, OrderLines, Pricing};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A customer placed an order; the checkout saga starts here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct OrderPlaced {
    pub customer_id: CustomerId,
    pub email: EmailAddress,
    pub lines: OrderLines,
    pub card_token: CardToken,
}

/// Confirm the order: the saga's pivot. After this the order is promised to
/// the customer and the saga only moves forward.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct ConfirmOrder {
    pub pricing: Pricing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct OrderConfirmed {
    pub total: Money,
}

/// Cancel the order, saying why. `pricing` is present when the inventory had
/// quoted prices before the saga failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct CancelOrder {
    pub reason: CancellationReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct OrderCancelled {
    pub reason: CancellationReason,
}

/// The customer asked to cancel the order while its saga was still running.
/// The orchestrator decides: before the pivot the saga compensates and the
/// order is cancelled with `customer_cancelled`; after it the request is
/// refused and the order is confirmed as promised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct OrderCancellationRequested {
    /// The customer's words, if they gave any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why an order was cancelled: a stable code for programs and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct CancellationReason {
    pub code: CancellationCode,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum CancellationCode {
    OutOfStock,
    UnknownSku,
    PaymentDeclined,
    PaymentTimedOut,
    InventoryTimedOut,
    ReservationExpired,
    /// An operator stopped the saga before the pivot (the detail says why).
    AbortedByOperator,
    /// The customer cancelled before the pivot (added in 1.2).
    CustomerCancelled,
    /// A code added by a newer minor version that this reader does not know.
    #[serde(other)]
    Other,
}

impl CancellationCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::UnknownSku => "unknown_sku",
            Self::PaymentDeclined => "payment_declined",
            Self::PaymentTimedOut => "payment_timed_out",
            Self::InventoryTimedOut => "inventory_timed_out",
            Self::ReservationExpired => "reservation_expired",
            Self::AbortedByOperator => "aborted_by_operator",
            Self::CustomerCancelled => "customer_cancelled",
            Self::Other => "other",
        }
    }
}
