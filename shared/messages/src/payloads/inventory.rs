//! Messages on `inventory.commands` and `inventory.events`.

use checkout_domain::{OrderLines, Pricing, Sku};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Reserve every line of the order, or none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct ReserveInventory {
    pub lines: OrderLines,
}

/// Stock is held for the order at the quoted prices until `expires_at`,
/// unless committed or released first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct InventoryReserved {
    pub pricing: Pricing,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    #[cfg_attr(feature = "arbitrary", proptest(strategy = "super::arbitrary_time()"))]
    pub expires_at: OffsetDateTime,
}

/// Nothing was reserved, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct InventoryReservationRejected {
    pub code: RejectionCode,
    /// The first line that could not be reserved.
    pub sku: Sku,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    OutOfStock,
    UnknownSku,
    #[serde(other)]
    Other,
}

/// Compensation for `ReserveInventory`: give back whatever is held for the order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct ReleaseInventory {}

/// Nothing is held for the order any more (also sent when nothing was held).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct InventoryReleased {}

/// Turn the order's hold into a sale: the stock leaves the warehouse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct CommitInventory {}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct InventoryCommitted {}

/// The hold could not be committed: it had expired and the stock is gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct InventoryCommitRejected {
    pub detail: String,
}

/// A hold reached its time to live without being committed or released, and
/// its stock went back on the shelf.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct InventoryReservationExpired {}
