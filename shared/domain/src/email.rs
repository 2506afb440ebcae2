use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::schema::string_schema;

/// A deliverable-looking email address: `local@domain.tld`, at most 254 bytes.
///
/// The check is deliberately simple (RFC 5322 allows far more); the real
/// test of an address is the SMTP server. `Debug` hides the address so it
/// never reaches a log line.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email address must be at most 254 characters")]
    TooLong,
    #[error("email address must look like name@example.com")]
    Malformed,
}

impl EmailAddress {
    pub const MAX_LEN: usize = 254;
    const MAX_LOCAL_LEN: usize = 64;

    pub fn parse(value: impl Into<String>) -> Result<Self, EmailError> {
        let value = value.into();
        if value.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = value.split_once('@').ok_or(EmailError::Malformed)?;
        let local_ok = !local.is_empty() && local.len() <= Self::MAX_LOCAL_LEN;
        let labels_ok = domain.split('.').count() >= 2
            && domain
                .split('.')
                .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        let chars_ok = !value.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
        if local_ok && labels_ok && chars_ok && !domain.contains('@') {
            Ok(Self(value))
        } else {
            Err(EmailError::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<EmailAddress> for String {
    fn from(email: EmailAddress) -> Self {
        email.0
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

impl JsonSchema for EmailAddress {
    fn schema_name() -> Cow<'static, str> {
        "EmailAddress".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(3, Self::MAX_LEN, r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$", "Customer email address.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_addresses_are_accepted() {
        for good in ["ada@example.com", "a.b+tag@mail.example.org", "x@y.io"] {
            assert!(EmailAddress::parse(good).is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn implausible_addresses_are_rejected() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@exa_mple.com",
            "ada@example..com",
        ] {
            assert_eq!(EmailAddress::parse(bad), Err(EmailError::Malformed), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(long), Err(EmailError::TooLong));
    }

    #[test]
    fn debug_output_never_shows_the_address() {
        let email = EmailAddress::parse("ada@example.com").unwrap();
        assert!(!format!("{email:?}").contains("ada"));
    }
}
