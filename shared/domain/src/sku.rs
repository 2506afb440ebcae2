use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::schema::string_schema;

/// A stock-keeping unit: upper-case letters, digits and hyphens, starting with
/// a letter or digit, at most 32 characters (e.g. `MUG-BLACK`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    #[error("sku must not be empty")]
    Empty,
    #[error("sku must be at most {max} characters", max = Sku::MAX_LEN)]
    TooLong,
    #[error("sku may contain only A-Z, 0-9 and '-', and must start with a letter or digit, got {0:?}")]
    InvalidCharacters(String),
}

impl Sku {
    pub const MAX_LEN: usize = 32;
    const PATTERN: &'static str = "^[A-Z0-9][A-Z0-9-]{0,31}$";

    pub fn parse(value: impl Into<String>) -> Result<Self, SkuError> {
        let value = value.into();
        let Some(first) = value.bytes().next() else {
            return Err(SkuError::Empty);
        };
        if value.len() > Self::MAX_LEN {
            return Err(SkuError::TooLong);
        }
        let allowed = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
        if !allowed(first) || !value.bytes().all(|b| allowed(b) || b == b'-') {
            return Err(SkuError::InvalidCharacters(value));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = SkuError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Sku> for String {
    fn from(sku: Sku) -> Self {
        sku.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sku({})", self.0)
    }
}

impl JsonSchema for Sku {
    fn schema_name() -> Cow<'static, str> {
        "Sku".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(1, Self::MAX_LEN, Self::PATTERN, "Stock-keeping unit.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_skus_are_accepted() {
        for good in ["MUG-BLACK", "A", "TEE-M-2024", "0-1"] {
            assert_eq!(Sku::parse(good).map(|s| s.to_string()), Ok(good.to_owned()));
        }
    }

    #[test]
    fn malformed_skus_are_rejected_with_the_reason() {
        assert_eq!(Sku::parse(""), Err(SkuError::Empty));
        assert_eq!(Sku::parse("A".repeat(33)), Err(SkuError::TooLong));
        for bad in ["mug", "-MUG", "MUG BLACK", "MUG_BLACK", "MÜG"] {
            assert!(matches!(Sku::parse(bad), Err(SkuError::InvalidCharacters(_))), "{bad:?} accepted");
        }
    }
}
