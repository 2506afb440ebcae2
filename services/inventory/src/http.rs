//! The catalog over HTTP: `GET /products`, `GET /products/{sku}`, and, for
//! operators, `PUT /products/{sku}` (create a product or set its stock).

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use checkout_domain::{Money, Sku};
use checkout_platform::http::{ApiJson, FieldError, Operator, OperatorTokens, Problem};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::store::{self, Product, ProductChange, Refusal, StoreError};

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

impl From<Product> for ProductView {
    fn from(product: Product) -> Self {
        Self {
            sku: product.sku.as_str().to_owned(),
            name: product.name,
            unit_price: product.unit_price,
            on_hand: product.on_hand,
            reserved: product.reserved,
            available: product.on_hand - product.reserved,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Api {
    pub pool: PgPool,
    pub operators: OperatorTokens,
}

impl FromRef<Api> for OperatorTokens {
    fn from_ref(api: &Api) -> Self {
        api.operators.clone()
    }
}

pub fn routes(api: Api) -> Router {
    Router::new().route("/products", get(list)).route("/products/{sku}", get(one).put(put)).with_state(api)
}

async fn list(State(api): State<Api>) -> Result<axum::Json<Vec<ProductView>>, Problem> {
    let products = store::products(&api.pool).await.map_err(Problem::storage)?;
    Ok(axum::Json(products.into_iter().map(ProductView::from).collect()))
}

fn sku(text: String) -> Result<Sku, Problem> {
    Sku::parse(text).map_err(|e| Problem::bad_request(e.to_string()))
}

async fn one(State(api): State<Api>, Path(text): Path<String>) -> Result<axum::Json<ProductView>, Problem> {
    let sku = sku(text)?;
    let product = store::product(&api.pool, &sku)
        .await
        .map_err(Problem::storage)?
        .ok_or_else(|| Problem::not_found(format!("no product {sku}")))?;
    Ok(axum::Json(product.into()))
}

/// The body of `PUT /products/{sku}`: the product as it is to be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutProduct {
    name: String,
    unit_price: Money,
    on_hand: i32,
    /// Why; kept with the change.
    reason: String,
}

const MAX_REASON_CHARS: usize = 500;
const MAX_NAME_CHARS: usize = 200;

/// `PUT /products/{sku}` (operator): creates the product or sets its name,
/// price and units on hand. The stock may not drop below what is reserved;
/// who changed what, and why, is kept in `stock_changes`.
async fn put(
    State(api): State<Api>,
    Operator(operator): Operator,
    Path(text): Path<String>,
    ApiJson(body): ApiJson<PutProduct>,
) -> Result<(StatusCode, axum::Json<ProductView>), Problem> {
    let sku = sku(text)?;
    let mut errors = Vec::new();
    if body.name.trim().is_empty() || body.name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new("name", format!("1 to {MAX_NAME_CHARS} characters")));
    }
    if body.on_hand < 0 {
        errors.push(FieldError::new("on_hand", "must not be negative"));
    }
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        errors.push(FieldError::new("reason", format!("say why, in 1 to {MAX_REASON_CHARS} characters")));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let change =
        ProductChange { sku: &sku, name: body.name.trim(), unit_price: body.unit_price, on_hand: body.on_hand };
    let (product, created) = match store::put_product(&api.pool, &change, &operator, reason).await {
        Ok(done) => done,
        Err(StoreError::Refused(Refusal::BelowReserved { reserved })) => {
            return Err(Problem::conflict(
                "stock-below-reserved",
                "Stock below what is reserved",
                format!("{reserved} units of {sku} are reserved for orders; on_hand cannot go below that"),
            ));
        }
        Err(error) => return Err(Problem::storage(error)),
    };
    tracing::info!(operator = operator.as_str(), sku = %sku, on_hand = change.on_hand, reason, "stock set by an operator");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(product.into())))
}
