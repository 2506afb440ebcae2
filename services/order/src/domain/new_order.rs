use std::fmt::Write as _;

use checkout_domain::{CardToken, CustomerId, EmailAddress, OrderLines};
use sha2::{Digest, Sha256};

/// A valid checkout, as the HTTP layer hands it over.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub customer_id: CustomerId,
    pub email: EmailAddress,
    pub lines: OrderLines,
    pub card_token: CardToken,
}

impl NewOrder {
    /// Identifies the request's content, to tell a retry from a different
    /// request reusing an idempotency key.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.customer_id.as_str());
        hasher.update([0]);
        hasher.update(self.email.as_str());
        hasher.update([0]);
        for line in &self.lines {
            hasher.update(format!("{}:{};", line.sku, line.quantity));
        }
        hasher.update([0]);
        hasher.update(self.card_token.as_str());
        hasher.finalize().iter().fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
    }
}
