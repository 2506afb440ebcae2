use std::borrow::Cow;
use std::collections::BTreeSet;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::{Currency, Money, MoneyError, Quantity, Sku};

/// Most lines one order may have; bounds the work a single request can cause.
pub const MAX_ORDER_LINES: usize = 50;

/// One line of an order as the customer asked for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// The lines of an order: at least one, at most [`MAX_ORDER_LINES`], each SKU once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<OrderLine>", into = "Vec<OrderLine>")]
pub struct OrderLines(Vec<OrderLine>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderLinesError {
    #[error("an order needs at least one line")]
    Empty,
    #[error("an order may have at most {MAX_ORDER_LINES} lines, got {0}")]
    TooMany(usize),
    #[error("sku {0} appears on more than one line; combine them into one line")]
    DuplicateSku(Sku),
}

impl OrderLines {
    pub fn new(lines: Vec<OrderLine>) -> Result<Self, OrderLinesError> {
        if lines.is_empty() {
            return Err(OrderLinesError::Empty);
        }
        if lines.len() > MAX_ORDER_LINES {
            return Err(OrderLinesError::TooMany(lines.len()));
        }
        let mut seen = BTreeSet::new();
        if let Some(duplicate) = lines.iter().find(|line| !seen.insert(&line.sku)) {
            return Err(OrderLinesError::DuplicateSku(duplicate.sku.clone()));
        }
        Ok(Self(lines))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, OrderLine> {
        self.0.iter()
    }

    /// The first line; there always is one.
    pub fn first(&self) -> &OrderLine {
        // `new` refuses an empty list, and nothing removes lines afterwards.
        &self.0[0]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a OrderLines {
    type Item = &'a OrderLine;
    type IntoIter = std::slice::Iter<'a, OrderLine>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl TryFrom<Vec<OrderLine>> for OrderLines {
    type Error = OrderLinesError;

    fn try_from(lines: Vec<OrderLine>) -> Result<Self, Self::Error> {
        Self::new(lines)
    }
}

impl From<OrderLines> for Vec<OrderLine> {
    fn from(lines: OrderLines) -> Self {
        lines.0
    }
}

impl JsonSchema for OrderLines {
    fn schema_name() -> Cow<'static, str> {
        "OrderLines".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "array",
            "items": generator.subschema_for::<OrderLine>(),
            "minItems": 1,
            "maxItems": MAX_ORDER_LINES,
            "description": "Order lines; each sku appears at most once.",
        })
    }
}

/// An order line with the unit price the inventory quoted when it reserved the stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PricedLine {
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Money,
}

impl PricedLine {
    pub fn line_total(&self) -> Result<Money, MoneyError> {
        self.unit_price.checked_mul(self.quantity)
    }

    /// The order total; every line must be priced in `currency`.
    pub fn total(currency: Currency, lines: &[Self]) -> Result<Money, MoneyError> {
        lines.iter().try_fold(Money::zero(currency), |sum, line| sum.checked_add(line.line_total()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u32) -> OrderLine {
        OrderLine { sku: Sku::parse(sku).unwrap(), quantity: Quantity::new(quantity).unwrap() }
    }

    #[test]
    fn empty_and_oversized_orders_are_rejected() {
        assert_eq!(OrderLines::new(vec![]), Err(OrderLinesError::Empty));
        let many = (0..=MAX_ORDER_LINES).map(|i| line(&format!("SKU-{i}"), 1)).collect();
        assert_eq!(OrderLines::new(many), Err(OrderLinesError::TooMany(MAX_ORDER_LINES + 1)));
    }

    #[test]
    fn a_sku_may_appear_on_one_line_only() {
        let lines = vec![line("MUG", 1), line("TEE", 1), line("MUG", 2)];
        assert_eq!(OrderLines::new(lines), Err(OrderLinesError::DuplicateSku(Sku::parse("MUG").unwrap())));
    }

    #[test]
    fn duplicate_skus_are_rejected_when_decoding_too() {
        let json = r#"[{"sku":"MUG","quantity":1},{"sku":"MUG","quantity":1}]"#;
        let err = serde_json::from_str::<OrderLines>(json).unwrap_err();
        assert!(err.to_string().contains("more than one line"), "{err}");
    }

    #[test]
    fn total_is_the_sum_of_unit_price_times_quantity() {
        let priced = |sku: &str, quantity: u32, unit: i64| PricedLine {
            sku: Sku::parse(sku).unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
            unit_price: Money::new(unit, Currency::EUR).unwrap(),
        };
        let total = PricedLine::total(Currency::EUR, &[priced("MUG", 2, 1250), priced("TEE", 1, 1999)]).unwrap();
        assert_eq!(total.amount_minor(), 4499);
    }
}

/// The priced lines of an order and their total, which always agree: every
/// line is priced in the same currency and the total is their sum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "PricingRepr", into = "PricingRepr")]
#[schemars(with = "PricingRepr")]
pub struct Pricing {
    lines: Vec<PricedLine>,
    total: Money,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Pricing")]
struct PricingRepr {
    #[schemars(length(min = 1, max = MAX_ORDER_LINES))]
    lines: Vec<PricedLine>,
    /// Sum of `unit_price * quantity` over the lines.
    total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("pricing needs at least one line")]
    Empty,
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("total {stated} does not equal the sum of the lines, {computed}")]
    TotalMismatch { stated: Money, computed: Money },
}

impl Pricing {
    pub fn new(lines: Vec<PricedLine>) -> Result<Self, PricingError> {
        let currency = lines.first().ok_or(PricingError::Empty)?.unit_price.currency();
        let total = PricedLine::total(currency, &lines)?;
        Ok(Self { lines, total })
    }

    pub fn lines(&self) -> &[PricedLine] {
        &self.lines
    }

    pub const fn total(&self) -> Money {
        self.total
    }
}

impl TryFrom<PricingRepr> for Pricing {
    type Error = PricingError;

    fn try_from(repr: PricingRepr) -> Result<Self, Self::Error> {
        let pricing = Self::new(repr.lines)?;
        if pricing.total != repr.total {
            return Err(PricingError::TotalMismatch { stated: repr.total, computed: pricing.total });
        }
        Ok(pricing)
    }
}

impl From<Pricing> for PricingRepr {
    fn from(pricing: Pricing) -> Self {
        Self { lines: pricing.lines, total: pricing.total }
    }
}

#[cfg(test)]
mod pricing_tests {
    use super::*;

    fn priced(sku: &str, quantity: u32, unit: i64, currency: Currency) -> PricedLine {
        PricedLine {
            sku: Sku::parse(sku).unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
            unit_price: Money::new(unit, currency).unwrap(),
        }
    }

    #[test]
    fn pricing_computes_its_total_and_refuses_mixed_currencies() {
        let pricing = Pricing::new(vec![priced("MUG", 2, 1250, Currency::EUR), priced("TEE", 1, 1999, Currency::EUR)]);
        assert_eq!(pricing.map(|p| p.total().amount_minor()), Ok(4499));
        let mixed = Pricing::new(vec![priced("MUG", 1, 1, Currency::EUR), priced("TEE", 1, 1, Currency::USD)]);
        assert!(matches!(mixed, Err(PricingError::Money(MoneyError::CurrencyMismatch(..)))));
        assert_eq!(Pricing::new(vec![]), Err(PricingError::Empty));
    }

    #[test]
    fn a_decoded_pricing_whose_total_disagrees_with_its_lines_is_rejected() {
        let json = r#"{"lines":[{"sku":"MUG","quantity":2,"unit_price":{"amount_minor":100,"currency":"EUR"}}],
                       "total":{"amount_minor":201,"currency":"EUR"}}"#;
        let err = serde_json::from_str::<Pricing>(json).unwrap_err();
        assert!(err.to_string().contains("does not equal"), "{err}");
    }
}
