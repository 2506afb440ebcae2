//! The checkout request as clients send it, and its validation into domain
//! values. Every problem is reported at once, each with the field it is about.

use checkout_domain::{CardToken, CustomerId, EmailAddress, MAX_ORDER_LINES, OrderLine, OrderLines, Quantity, Sku};
use checkout_platform::http::FieldError;
use serde::Deserialize;

use crate::domain::NewOrder;

/// `POST /orders` body. Unknown fields are refused, so a typo never passes silently.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub customer_id: String,
    pub email: String,
    pub items: Vec<ItemRequest>,
    pub payment: PaymentRequest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub sku: String,
    /// Signed, so `-1` is answered "must be at least 1" rather than "invalid type".
    pub quantity: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub card_token: String,
}

impl PlaceOrderRequest {
    pub fn validate(self) -> Result<NewOrder, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut check = |field: &str, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push(FieldError::new(field, message));
            }
        };
        let customer_id = CustomerId::parse(self.customer_id).map_err(|e| e.to_string());
        check("customer_id", customer_id.clone().map(drop));
        let email = EmailAddress::parse(self.email).map_err(|e| e.to_string());
        check("email", email.clone().map(drop));
        let card_token = CardToken::parse(self.payment.card_token).map_err(|e| e.to_string());
        check("payment.card_token", card_token.clone().map(drop));

        let mut lines = Vec::new();
        if self.items.is_empty() {
            check("items", Err("an order needs at least one item".into()));
        } else if self.items.len() > MAX_ORDER_LINES {
            check("items", Err(format!("an order may have at most {MAX_ORDER_LINES} items, got {}", self.items.len())));
        } else {
            for (index, item) in self.items.into_iter().enumerate() {
                let sku = Sku::parse(item.sku).map_err(|e| e.to_string());
                check(&format!("items[{index}].sku"), sku.clone().map(drop));
                let quantity = quantity(item.quantity);
                check(&format!("items[{index}].quantity"), quantity.clone().map(drop));
                if let (Ok(sku), Ok(quantity)) = (sku, quantity) {
                    if let Some(first) = lines.iter().position(|line: &OrderLine| line.sku == sku) {
                        let message = format!("{sku} is already on items[{first}]; put the whole quantity on one line");
                        check(&format!("items[{index}].sku"), Err(message));
                    }
                    lines.push(OrderLine { sku, quantity });
                }
            }
        }
        let lines = OrderLines::new(lines);
        match (customer_id, email, card_token, lines) {
            (Ok(customer_id), Ok(email), Ok(card_token), Ok(lines)) if errors.is_empty() => {
                Ok(NewOrder { customer_id, email, lines, card_token })
            }
            _ => Err(errors),
        }
    }
}

fn quantity(value: i64) -> Result<Quantity, String> {
    match u32::try_from(value) {
        Ok(value) => Quantity::new(value).map_err(|e| e.to_string()),
        Err(_) if value < 0 => Err("quantity must be at least 1".into()),
        Err(_) => Err(format!("quantity must be at most {}", Quantity::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(items: Vec<(&str, i64)>) -> PlaceOrderRequest {
        PlaceOrderRequest {
            customer_id: "cust-1".into(),
            email: "ada@example.com".into(),
            items: items.into_iter().map(|(sku, quantity)| ItemRequest { sku: sku.into(), quantity }).collect(),
            payment: PaymentRequest { card_token: "tok_visa".into() },
        }
    }

    fn fields(result: Result<NewOrder, Vec<FieldError>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_request_becomes_an_order() {
        let order = request(vec![("MUG-BLACK", 2), ("TEE-M", 1)]).validate().unwrap();
        assert_eq!(order.lines.len(), 2);
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let mut bad = request(vec![("mug", 0), ("TEE-M", 1001), ("TEE-M", -3)]);
        bad.email = "not-an-email".into();
        bad.payment.card_token = String::new();
        let got = fields(bad.validate());
        assert_eq!(
            got,
            [
                "email",
                "payment.card_token",
                "items[0].sku",
                "items[0].quantity",
                "items[1].quantity",
                "items[2].quantity"
            ]
        );
    }

    #[test]
    fn duplicate_skus_name_both_lines() {
        let errors = request(vec![("MUG-BLACK", 1), ("MUG-BLACK", 2)]).validate().unwrap_err();
        assert_eq!(errors[0].field, "items[1].sku");
        assert!(errors[0].message.contains("items[0]"), "{}", errors[0].message);
    }

    #[test]
    fn empty_and_oversized_orders_are_refused() {
        assert_eq!(fields(request(vec![]).validate()), ["items"]);
        let many = (0..=MAX_ORDER_LINES).map(|_| ("MUG-BLACK", 1)).collect();
        assert_eq!(fields(request(many).validate()), ["items"]);
    }

    #[test]
    fn the_fingerprint_changes_with_any_field() {
        let base = request(vec![("MUG-BLACK", 1)]).validate().unwrap().fingerprint();
        assert_eq!(base, request(vec![("MUG-BLACK", 1)]).validate().unwrap().fingerprint());
        assert_ne!(base, request(vec![("MUG-BLACK", 2)]).validate().unwrap().fingerprint());
        let mut other = request(vec![("MUG-BLACK", 1)]);
        other.payment.card_token = "tok_decline".into();
        assert_ne!(base, other.validate().unwrap().fingerprint());
    }
}
