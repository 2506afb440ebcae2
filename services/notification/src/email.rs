//! What the emails say: pure rendering, so the wording is tested without SMTP.

use std::fmt::Write as _;

use checkout_domain::{OrderId, Pricing};
use checkout_messages::payloads::order::CancellationReason;

/// A rendered email, before addressing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub body: String,
}

/// A short, readable reference for subjects (the id's first 8 hex digits).
fn reference(order: OrderId) -> String {
    order.as_uuid().simple().to_string()[..8].to_uppercase()
}

pub fn order_confirmed(order: OrderId, pricing: &Pricing) -> Email {
    let mut lines = String::new();
    for line in pricing.lines() {
        let total = line.line_total().map_or_else(|_| "-".to_owned(), |t| t.to_string());
        let _ = writeln!(
            lines,
            "  {:>4} x {:<20} {:>14} {:>14}",
            line.quantity,
            line.sku,
            line.unit_price.to_string(),
            total
        );
    }
    Email {
        subject: format!("Your order {} is confirmed", reference(order)),
        body: format!(
            "Hello,\n\nthank you for your order {order}. It is confirmed and paid.\n\n{lines}  {:<27} {:>29}\n\n\
             We will let you know when it ships.\n",
            "Total",
            pricing.total().to_string()
        ),
    }
}

pub fn order_cancelled(order: OrderId, reason: &CancellationReason) -> Email {
    Email {
        subject: format!("Your order {} was cancelled", reference(order)),
        body: format!(
            "Hello,\n\nwe are sorry: your order {order} was cancelled.\n\nReason: {}\n\n\
             Nothing was charged, and any hold on your card has been released.\n",
            reason.detail
        ),
    }
}

#[cfg(test)]
mod tests {
    use checkout_domain::{Currency, Money, PricedLine, Quantity, Sku};
    use checkout_messages::payloads::order::CancellationCode;
    use uuid::Uuid;

    use super::*;

    fn order() -> OrderId {
        OrderId::from_uuid(Uuid::from_u128(0x0190_d5c4_aaaa_7000_8000_0000_0000_0001))
    }

    #[test]
    fn a_confirmation_lists_lines_and_total() {
        let pricing = Pricing::new(vec![PricedLine {
            sku: Sku::parse("MUG-BLACK").unwrap(),
            quantity: Quantity::new(2).unwrap(),
            unit_price: Money::new(1250, Currency::EUR).unwrap(),
        }])
        .unwrap();
        let email = order_confirmed(order(), &pricing);
        assert_eq!(email.subject, "Your order 0190D5C4 is confirmed");
        assert!(email.body.contains("2 x MUG-BLACK"), "{}", email.body);
        assert!(email.body.contains("EUR 12.50") && email.body.contains("EUR 25.00"), "{}", email.body);
        assert!(email.body.contains(&order().to_string()));
    }

    #[test]
    fn a_cancellation_says_why() {
        let reason =
            CancellationReason { code: CancellationCode::PaymentDeclined, detail: "insufficient funds".into() };
        let email = order_cancelled(order(), &reason);
        assert_eq!(email.subject, "Your order 0190D5C4 was cancelled");
        assert!(email.body.contains("Reason: insufficient funds"));
    }
}
