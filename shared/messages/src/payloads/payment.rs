//! Messages on `payment.commands` and `payment.events`.

use checkout_domain::{CardToken, Money};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Place a hold on the customer's card for `amount`.
///
/// Version 2.0 carries the amount as `Money` with its currency; 1.x carried a
/// bare `amount_minor` in euro cents and is upcast on read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct AuthorizePayment {
    pub amount: Money,
    pub card_token: CardToken,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct PaymentAuthorized {
    /// The gateway's reference for the hold.
    pub authorization_id: String,
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct PaymentDeclined {
    pub code: DeclineCode,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum DeclineCode {
    CardDeclined,
    InsufficientFunds,
    /// The payment was voided before it could be authorized.
    AlreadyVoided,
    #[serde(other)]
    Other,
}

/// Take the authorized money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct CapturePayment {
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct PaymentCaptured {
    pub amount: Money,
}

/// Compensation for an authorization that was not captured: release the hold.
/// Also sent when the authorization's outcome is unknown (it timed out), so a
/// late authorization can never turn into a charge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct VoidPayment {}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct PaymentVoided {}

/// Compensation for a captured payment: give the money back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct RefundPayment {
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct PaymentRefunded {
    pub amount: Money,
}
