use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::Quantity;

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency must be a three-letter upper-case ISO 4217 code, got {0:?}")]
pub struct CurrencyError(pub String);

impl Currency {
    pub const EUR: Self = Self(*b"EUR");
    pub const USD: Self = Self(*b"USD");

    pub fn parse(code: &str) -> Result<Self, CurrencyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(CurrencyError(code.to_owned())),
        }
    }

    pub fn code(&self) -> &str {
        // Only ASCII upper-case letters are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point in this currency's major unit, for display only.
    pub fn minor_unit_digits(self) -> u32 {
        match &self.0 {
            b"JPY" | b"KRW" | b"ISK" | b"CLP" | b"VND" => 0,
            b"BHD" | b"KWD" | b"OMR" | b"JOD" | b"TND" => 3,
            _ => 2,
        }
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = CurrencyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.code().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 currency code.",
        })
    }
}

/// A non-negative amount of money in integer minor units (cents for EUR).
///
/// Never a float: amounts are added and multiplied with overflow checks, and
/// amounts in different currencies never mix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "MoneyRepr", into = "MoneyRepr")]
#[schemars(with = "MoneyRepr")]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

/// The wire form of [`Money`]; validated into `Money` on the way in.
#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Money")]
struct MoneyRepr {
    /// Amount in the currency's minor unit (e.g. cents); never negative.
    #[schemars(range(min = 0))]
    amount_minor: i64,
    currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must not be negative, got {0}")]
    Negative(i64),
    #[error("cannot combine amounts in {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount overflows the representable range")]
    Overflow,
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount_minor < 0 {
            return Err(MoneyError::Negative(amount_minor));
        }
        Ok(Self { amount_minor, currency })
    }

    pub const fn zero(currency: Currency) -> Self {
        Self { amount_minor: 0, currency }
    }

    pub const fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    pub const fn currency(&self) -> Currency {
        self.currency
    }

    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let amount_minor = self.amount_minor.checked_add(other.amount_minor).ok_or(MoneyError::Overflow)?;
        Ok(Self { amount_minor, ..self })
    }

    pub fn checked_mul(self, quantity: Quantity) -> Result<Self, MoneyError> {
        let amount_minor = self.amount_minor.checked_mul(i64::from(quantity.get())).ok_or(MoneyError::Overflow)?;
        Ok(Self { amount_minor, ..self })
    }

    /// Sums amounts that must all be in `currency`; an empty sum is zero.
    pub fn sum(currency: Currency, amounts: impl IntoIterator<Item = Self>) -> Result<Self, MoneyError> {
        amounts.into_iter().try_fold(Self::zero(currency), Self::checked_add)
    }
}

impl TryFrom<MoneyRepr> for Money {
    type Error = MoneyError;

    fn try_from(repr: MoneyRepr) -> Result<Self, Self::Error> {
        Self::new(repr.amount_minor, repr.currency)
    }
}

impl From<Money> for MoneyRepr {
    fn from(money: Money) -> Self {
        Self { amount_minor: money.amount_minor, currency: money.currency }
    }
}

/// Formats as `EUR 19.99`: integer arithmetic only, digits from the currency.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_unit_digits();
        if digits == 0 {
            return write!(f, "{} {}", self.currency, self.amount_minor);
        }
        let scale = 10_i64.pow(digits);
        let width = digits as usize;
        write!(f, "{} {}.{:0width$}", self.currency, self.amount_minor / scale, self.amount_minor % scale)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::EUR).unwrap()
    }

    #[test]
    fn negative_amounts_are_rejected() {
        assert_eq!(Money::new(-1, Currency::EUR), Err(MoneyError::Negative(-1)));
    }

    #[test]
    fn amounts_in_different_currencies_do_not_add() {
        let usd = Money::new(1, Currency::USD).unwrap();
        assert_eq!(eur(1).checked_add(usd), Err(MoneyError::CurrencyMismatch(Currency::EUR, Currency::USD)));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert_eq!(eur(i64::MAX).checked_add(eur(1)), Err(MoneyError::Overflow));
        let many = Quantity::new(2).unwrap();
        assert_eq!(eur(i64::MAX / 2 + 1).checked_mul(many), Err(MoneyError::Overflow));
    }

    #[test]
    fn display_uses_the_currency_minor_unit() {
        assert_eq!(eur(1999).to_string(), "EUR 19.99");
        assert_eq!(eur(5).to_string(), "EUR 0.05");
        assert_eq!(Money::new(1500, Currency::parse("JPY").unwrap()).unwrap().to_string(), "JPY 1500");
        assert_eq!(Money::new(1500, Currency::parse("KWD").unwrap()).unwrap().to_string(), "KWD 1.500");
    }

    #[test]
    fn wire_form_is_minor_units_and_code() {
        let json = serde_json::to_string(&eur(1999)).unwrap();
        assert_eq!(json, r#"{"amount_minor":1999,"currency":"EUR"}"#);
        let err = serde_json::from_str::<Money>(r#"{"amount_minor":-5,"currency":"EUR"}"#).unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
        assert!(serde_json::from_str::<Money>(r#"{"amount_minor":5,"currency":"eur"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount_minor":5.5,"currency":"EUR"}"#).is_err());
    }

    #[test]
    fn currency_codes_must_be_three_upper_case_letters() {
        for bad in ["", "EU", "EURO", "eur", "E1R", "ÉUR"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn sum_equals_the_integer_sum_when_it_fits(amounts in proptest::collection::vec(0..=1_000_000_000_i64, 0..50)) {
            let total = Money::sum(Currency::EUR, amounts.iter().map(|&a| eur(a))).unwrap();
            prop_assert_eq!(total.amount_minor(), amounts.iter().sum::<i64>());
        }

        #[test]
        fn multiplication_is_repeated_addition(unit in 0..=10_000_000_i64, quantity in 1..=Quantity::MAX) {
            let product = eur(unit).checked_mul(Quantity::new(quantity).unwrap()).unwrap();
            prop_assert_eq!(product.amount_minor(), unit * i64::from(quantity));
        }

        #[test]
        fn addition_never_panics_and_is_commutative(a in 0..=i64::MAX, b in 0..=i64::MAX) {
            prop_assert_eq!(eur(a).checked_add(eur(b)), eur(b).checked_add(eur(a)));
        }
    }
}
