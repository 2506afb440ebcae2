//! The product catalogue and its stock, as operators and the benchmark's
//! seed see them.

use checkout_domain::{Currency, Money, Sku};
use sqlx::PgPool;

use super::{Refusal, StoreError, corrupt};

/// A product of the catalog and its stock.
#[derive(Debug, Clone)]
pub struct Product {
    pub sku: Sku,
    pub name: String,
    pub unit_price: Money,
    pub on_hand: i32,
    pub reserved: i32,
}

struct ProductRow {
    sku: String,
    name: String,
    unit_price_minor: i64,
    currency: String,
    on_hand: i32,
    reserved: i32,
}

impl TryFrom<ProductRow> for Product {
    type Error = StoreError;

    fn try_from(row: ProductRow) -> Result<Self, StoreError> {
        let currency = Currency::parse(&row.currency).map_err(corrupt)?;
        Ok(Self {
            sku: Sku::parse(row.sku).map_err(corrupt)?,
            name: row.name,
            unit_price: Money::new(row.unit_price_minor, currency).map_err(corrupt)?,
            on_hand: row.on_hand,
            reserved: row.reserved,
        })
    }
}

/// The whole catalog, by SKU.
pub async fn products(pool: &PgPool) -> Result<Vec<Product>, StoreError> {
    let rows = sqlx::query_as!(
        ProductRow,
        "SELECT sku, name, unit_price_minor, currency, on_hand, reserved FROM products ORDER BY sku"
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Product::try_from).collect()
}

pub async fn product(pool: &PgPool, sku: &Sku) -> Result<Option<Product>, StoreError> {
    let row = sqlx::query_as!(
        ProductRow,
        "SELECT sku, name, unit_price_minor, currency, on_hand, reserved FROM products WHERE sku = $1",
        sku.as_str(),
    )
    .fetch_optional(pool)
    .await?;
    row.map(Product::try_from).transpose()
}

/// A product as an operator sets it.
#[derive(Debug)]
pub struct ProductChange<'a> {
    pub sku: &'a Sku,
    pub name: &'a str,
    pub unit_price: Money,
    pub on_hand: i32,
}

/// Creates the product or sets it as given, recording who did it and why;
/// returns the product and whether it was created.
pub async fn put_product(
    pool: &PgPool,
    change: &ProductChange<'_>,
    operator: &str,
    reason: &str,
) -> Result<(Product, bool), StoreError> {
    let mut tx = pool.begin().await?;
    let before = sqlx::query!("SELECT on_hand, reserved FROM products WHERE sku = $1 FOR UPDATE", change.sku.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(before) = &before
        && change.on_hand < before.reserved
    {
        return Err(StoreError::Refused(Refusal::BelowReserved { reserved: before.reserved }));
    }
    let currency = change.unit_price.currency();
    let row = sqlx::query_as!(
        ProductRow,
        "INSERT INTO products (sku, name, unit_price_minor, currency, on_hand) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, unit_price_minor = EXCLUDED.unit_price_minor,
             currency = EXCLUDED.currency, on_hand = EXCLUDED.on_hand, updated_at = now()
         RETURNING sku, name, unit_price_minor, currency, on_hand, reserved",
        change.sku.as_str(),
        change.name,
        change.unit_price.amount_minor(),
        currency.code(),
        change.on_hand,
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO stock_changes (sku, operator, reason, on_hand_from, on_hand_to) VALUES ($1, $2, $3, $4, $5)",
        change.sku.as_str(),
        operator,
        reason,
        before.as_ref().map(|b| b.on_hand),
        change.on_hand,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((Product::try_from(row)?, before.is_none()))
}

/// The most SKUs whose stock `/metrics` exports: one series each.
pub const STOCK_GAUGE_LIMIT: i64 = 1000;

/// Units available (on hand, not reserved) per SKU, for the stock gauges:
/// the first [`STOCK_GAUGE_LIMIT`] SKUs in order.
pub async fn available_units(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT sku, (on_hand - reserved)::BIGINT AS "available!" FROM products ORDER BY sku LIMIT $1"#,
        STOCK_GAUGE_LIMIT,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|row| (row.sku, row.available)).collect())
}
