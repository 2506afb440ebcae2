//! Domain types every service speaks: order ids, money in integer minor units,
//! quantities, SKUs, contact details and card tokens.
//!
//! This crate is deliberately pure: no I/O, no clock, no async. Values are
//! validated once, at construction or deserialization, so code holding one of
//! these types never re-checks it.

mod card;
mod email;
mod ids;
mod lines;
mod money;
mod quantity;
mod schema;
mod sku;

#[cfg(feature = "arbitrary")]
pub mod arbitrary;

pub use card::{CardToken, CardTokenError};
pub use email::{EmailAddress, EmailError};
pub use ids::{CustomerId, CustomerIdError, OrderId};
pub use lines::{MAX_ORDER_LINES, OrderLine, OrderLines, OrderLinesError, PricedLine, Pricing, PricingError};
pub use money::{Currency, CurrencyError, Money, MoneyError};
pub use quantity::{Quantity, QuantityError};
pub use sku::{Sku, SkuError};
