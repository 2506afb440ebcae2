use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use checkout_domain::OrderId;

use super::Problem;

/// The order id in a route's `{order_id}` segment; a `400` problem when it
/// is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderIdPath(pub OrderId);

impl<S: Send + Sync> FromRequestParts<S> for OrderIdPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
        text.parse().map(Self).map_err(|_| Problem::bad_request(format!("{text:?} is not an order id (a UUID)")))
    }
}
