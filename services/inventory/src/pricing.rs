//! Deciding a reservation: pure, given the order's lines and the locked stock.

use checkout_domain::{Money, OrderLines, PricedLine, Pricing, PricingError, Sku};
use checkout_messages::payloads::inventory::RejectionCode;

/// A product's price and how much of it can still be reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockLevel {
    pub sku: Sku,
    pub unit_price: Money,
    pub available: i64,
}

/// Why an order cannot be reserved; the first line that fails decides.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0} is not in the catalog")]
    UnknownSku(Sku),
    #[error("{sku}: {requested} requested, {available} available")]
    OutOfStock { sku: Sku, requested: u32, available: i64 },
    #[error("{sku}: {source}")]
    Unpriceable {
        sku: Sku,
        #[source]
        source: PricingError,
    },
}

impl Rejection {
    pub fn code(&self) -> RejectionCode {
        match self {
            Self::UnknownSku(_) => RejectionCode::UnknownSku,
            Self::OutOfStock { .. } => RejectionCode::OutOfStock,
            Self::Unpriceable { .. } => RejectionCode::Other,
        }
    }

    pub fn sku(&self) -> &Sku {
        match self {
            Self::UnknownSku(sku) | Self::OutOfStock { sku, .. } | Self::Unpriceable { sku, .. } => sku,
        }
    }
}

/// Prices every line if all of them are in stock.
pub fn price(lines: &OrderLines, stock: &[StockLevel]) -> Result<Pricing, Rejection> {
    let mut priced = Vec::with_capacity(lines.len());
    for line in lines {
        let level =
            stock.iter().find(|level| level.sku == line.sku).ok_or_else(|| Rejection::UnknownSku(line.sku.clone()))?;
        if level.available < i64::from(line.quantity) {
            return Err(Rejection::OutOfStock {
                sku: line.sku.clone(),
                requested: line.quantity.get(),
                available: level.available.max(0),
            });
        }
        priced.push(PricedLine { sku: line.sku.clone(), quantity: line.quantity, unit_price: level.unit_price });
    }
    // Mixed currencies or an overflowing total: blame the first line.
    Pricing::new(priced).map_err(|source| Rejection::Unpriceable { sku: lines.first().sku.clone(), source })
}

#[cfg(test)]
mod tests {
    use checkout_domain::{Currency, OrderLine, Quantity};

    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn lines(wanted: &[(&str, u32)]) -> OrderLines {
        OrderLines::new(
            wanted.iter().map(|(s, q)| OrderLine { sku: sku(s), quantity: Quantity::new(*q).unwrap() }).collect(),
        )
        .unwrap()
    }

    fn stock(sku_name: &str, unit: i64, available: i64) -> StockLevel {
        StockLevel { sku: sku(sku_name), unit_price: Money::new(unit, Currency::EUR).unwrap(), available }
    }

    #[test]
    fn every_line_in_stock_is_priced() {
        let pricing =
            price(&lines(&[("MUG", 2), ("TEE", 1)]), &[stock("TEE", 1999, 1), stock("MUG", 1250, 5)]).unwrap();
        assert_eq!(pricing.total().amount_minor(), 4499);
        assert_eq!(pricing.lines()[0].sku, sku("MUG"), "lines keep the order's order");
    }

    #[test]
    fn the_first_failing_line_decides_the_rejection() {
        let rejection = price(&lines(&[("MUG", 2), ("NOPE", 1)]), &[stock("MUG", 1250, 5)]).unwrap_err();
        assert_eq!(rejection, Rejection::UnknownSku(sku("NOPE")));
        let rejection = price(&lines(&[("MUG", 6)]), &[stock("MUG", 1250, 5)]).unwrap_err();
        assert_eq!(rejection.to_string(), "MUG: 6 requested, 5 available");
        assert_eq!(rejection.code(), RejectionCode::OutOfStock);
    }

    #[test]
    fn exactly_the_available_quantity_can_be_reserved() {
        assert!(price(&lines(&[("MUG", 5)]), &[stock("MUG", 1250, 5)]).is_ok());
        assert!(price(&lines(&[("MUG", 1)]), &[stock("MUG", 1250, 0)]).is_err());
    }
}
