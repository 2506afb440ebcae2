use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use checkout_domain::{Currency, Money, Sku};
use checkout_platform::http::Problem;
use serde::Serialize;
use sqlx::PgPool;

/// A product and its stock, as served by `GET /products`.
#[derive(Debug, Serialize)]
pub struct ProductView {
    pub sku: String,
    pub name: String,
    pub unit_price: Money,
    pub on_hand: i32,
    pub reserved: i32,
    pub available: i32,
}

pub fn routes(pool: PgPool) -> Router {
    Router::new().route("/products", get(list)).route("/products/{sku}", get(one)).with_state(pool)
}

async fn list(State(pool): State<PgPool>) -> Result<axum::Json<Vec<ProductView>>, Problem> {
    let rows = sqlx::query!(
        r#"SELECT sku, name, unit_price_minor, currency, on_hand, reserved, (on_hand - reserved) AS "available!"
           FROM products ORDER BY sku"#
    )
    .fetch_all(&pool)
    .await
    .map_err(internal)?;
    rows.into_iter()
        .map(|r| view(r.sku, r.name, r.unit_price_minor, &r.currency, r.on_hand, r.reserved, r.available))
        .collect::<Result<Vec<_>, _>>()
        .map(axum::Json)
}

async fn one(State(pool): State<PgPool>, Path(sku): Path<String>) -> Result<axum::Json<ProductView>, Problem> {
    let sku = Sku::parse(sku).map_err(|e| Problem::bad_request(e.to_string()))?;
    let row = sqlx::query!(
        r#"SELECT sku, name, unit_price_minor, currency, on_hand, reserved, (on_hand - reserved) AS "available!"
           FROM products WHERE sku = $1"#,
        sku.as_str(),
    )
    .fetch_optional(&pool)
    .await
    .map_err(internal)?
    .ok_or_else(|| Problem::not_found(format!("no product {sku}")))?;
    view(row.sku, row.name, row.unit_price_minor, &row.currency, row.on_hand, row.reserved, row.available)
        .map(axum::Json)
}

#[allow(clippy::too_many_arguments, reason = "one argument per column")]
fn view(
    sku: String,
    name: String,
    unit_price_minor: i64,
    currency: &str,
    on_hand: i32,
    reserved: i32,
    available: i32,
) -> Result<ProductView, Problem> {
    let currency = Currency::parse(currency).map_err(internal)?;
    let unit_price = Money::new(unit_price_minor, currency).map_err(internal)?;
    Ok(ProductView { sku, name, unit_price, on_hand, reserved, available })
}

fn internal(error: impl std::fmt::Display) -> Problem {
    tracing::error!(%error, "catalog query failed");
    Problem::internal()
}
