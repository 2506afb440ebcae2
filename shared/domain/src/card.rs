use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::schema::string_schema;

/// An opaque token standing for a card held by the payment gateway; we never
/// see card numbers. `Debug` hides it so it never reaches a log line.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CardToken(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card token must be 1 to 128 characters of A-Z, a-z, 0-9, '_' or '-'")]
pub struct CardTokenError;

impl CardToken {
    pub const MAX_LEN: usize = 128;

    pub fn parse(value: impl Into<String>) -> Result<Self, CardTokenError> {
        let value = value.into();
        let well_formed = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if well_formed { Ok(Self(value)) } else { Err(CardTokenError) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CardToken {
    type Error = CardTokenError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<CardToken> for String {
    fn from(token: CardToken) -> Self {
        token.0
    }
}

impl fmt::Debug for CardToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardToken(<redacted>)")
    }
}

impl JsonSchema for CardToken {
    fn schema_name() -> Cow<'static, str> {
        "CardToken".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(1, Self::MAX_LEN, "^[A-Za-z0-9_-]+$", "Opaque card token issued by the payment gateway.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_opaque_but_bounded() {
        assert!(CardToken::parse("tok_visa").is_ok());
        assert_eq!(CardToken::parse(""), Err(CardTokenError));
        assert_eq!(CardToken::parse("tok visa"), Err(CardTokenError));
        assert_eq!(CardToken::parse("x".repeat(129)), Err(CardTokenError));
        assert!(!format!("{:?}", CardToken::parse("tok_visa").unwrap()).contains("visa"));
    }
}
