use std::fmt;
use std::str::FromStr;

/// A message schema version: `MAJOR.MINOR`.
///
/// Minor versions add optional fields only, so any reader of the same major
/// version can read them. A new major version is a breaking change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaVersion {
    pub major: u16,
    pub minor: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema version must look like MAJOR.MINOR (e.g. \"2.0\"), got {0:?}")]
pub struct SchemaVersionError(pub String);

impl SchemaVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

impl FromStr for SchemaVersion {
    type Err = SchemaVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || SchemaVersionError(s.to_owned());
        let (major, minor) = s.split_once('.').ok_or_else(invalid)?;
        let number = |part: &str| {
            // Reject signs, spaces and leading zeros so each version has one spelling.
            let canonical =
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) && (part == "0" || !part.starts_with('0'));
            if canonical { part.parse::<u16>().map_err(|_| invalid()) } else { Err(invalid()) }
        };
        Ok(Self { major: number(major)?, minor: number(minor)? })
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_their_canonical_spelling_only() {
        assert_eq!("2.1".parse(), Ok(SchemaVersion::new(2, 1)));
        assert_eq!("10.0".parse(), Ok(SchemaVersion::new(10, 0)));
        for bad in ["", "2", "2.", ".1", "02.1", "2.01", "+2.1", "2.1.0", "v2.1", "70000.0"] {
            assert!(bad.parse::<SchemaVersion>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn versions_order_by_major_then_minor() {
        assert!(SchemaVersion::new(1, 9) < SchemaVersion::new(2, 0));
        assert_eq!(SchemaVersion::new(3, 4).to_string(), "3.4");
    }
}
