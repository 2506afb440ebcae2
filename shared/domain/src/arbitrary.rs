//! Proptest strategies for the domain types, for property tests in other crates.
//! Each type also implements [`Arbitrary`], so structs built from them can
//! derive their own strategies.

use proptest::prelude::*;
use uuid::Uuid;

use crate::{
    CardToken, Currency, CustomerId, EmailAddress, Money, OrderId, OrderLine, OrderLines, PricedLine, Pricing,
    Quantity, Sku,
};

pub fn order_id() -> impl Strategy<Value = OrderId> {
    any::<u128>().prop_map(|bits| OrderId::from_uuid(Uuid::from_u128(bits)))
}

pub fn currency() -> impl Strategy<Value = Currency> {
    "[A-Z]{3}".prop_filter_map("valid currency", |code| Currency::parse(&code).ok())
}

pub fn money() -> impl Strategy<Value = Money> {
    (0..=i64::MAX, currency()).prop_filter_map("valid money", |(minor, currency)| Money::new(minor, currency).ok())
}

pub fn quantity() -> impl Strategy<Value = Quantity> {
    (1..=Quantity::MAX).prop_filter_map("valid quantity", |q| Quantity::new(q).ok())
}

pub fn sku() -> impl Strategy<Value = Sku> {
    "[A-Z0-9][A-Z0-9-]{0,31}".prop_filter_map("valid sku", |s| Sku::parse(s).ok())
}

pub fn customer_id() -> impl Strategy<Value = CustomerId> {
    "[a-zA-Z0-9_.:-]{1,64}".prop_filter_map("valid customer id", |s| CustomerId::parse(s).ok())
}

pub fn email() -> impl Strategy<Value = EmailAddress> {
    "[a-z0-9.+_-]{1,20}@[a-z0-9-]{1,20}\\.[a-z]{2,6}".prop_filter_map("valid email", |s| EmailAddress::parse(s).ok())
}

pub fn card_token() -> impl Strategy<Value = CardToken> {
    "[A-Za-z0-9_-]{1,40}".prop_filter_map("valid card token", |s| CardToken::parse(s).ok())
}

pub fn order_lines() -> impl Strategy<Value = OrderLines> {
    proptest::collection::btree_map(sku(), quantity(), 1..8).prop_filter_map("valid lines", |lines| {
        OrderLines::new(lines.into_iter().map(|(sku, quantity)| OrderLine { sku, quantity }).collect()).ok()
    })
}

macro_rules! arbitrary_from_strategy {
    ($($ty:ty => $strategy:expr;)*) => {$(
        impl Arbitrary for $ty {
            type Parameters = ();
            type Strategy = BoxedStrategy<Self>;

            fn arbitrary_with((): Self::Parameters) -> Self::Strategy {
                $strategy.boxed()
            }
        }
    )*};
}

arbitrary_from_strategy! {
    OrderId => order_id();
    Currency => currency();
    Money => money();
    Quantity => quantity();
    Sku => sku();
    CustomerId => customer_id();
    EmailAddress => email();
    CardToken => card_token();
    OrderLines => order_lines();
}

impl Arbitrary for PricedLine {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with((): Self::Parameters) -> Self::Strategy {
        (sku(), quantity(), money()).prop_map(|(sku, quantity, unit_price)| Self { sku, quantity, unit_price }).boxed()
    }
}

impl Arbitrary for Pricing {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with((): Self::Parameters) -> Self::Strategy {
        // Unit prices small enough that no sum overflows.
        (currency(), proptest::collection::btree_map(sku(), (quantity(), 0..1_000_000_i64), 1..8))
            .prop_filter_map("valid pricing", |(currency, lines)| {
                let lines = lines
                    .into_iter()
                    .map(|(sku, (quantity, unit))| {
                        Money::new(unit, currency).map(|unit_price| PricedLine { sku, quantity, unit_price })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?;
                Pricing::new(lines).ok()
            })
            .boxed()
    }
}
