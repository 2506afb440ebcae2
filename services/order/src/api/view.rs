use checkout_domain::OrderId;
use serde::Serialize;
use time::OffsetDateTime;

use crate::store::OrderRecord;

/// `GET /orders/{order_id}`. Amounts are integer minor units with their
/// currency; a line's price is `null` until the inventory has quoted it.
#[derive(Debug, Serialize)]
pub struct OrderView {
    pub order_id: OrderId,
    pub status: String,
    pub customer_id: String,
    pub cancellation: Option<CancellationView>,
    pub lines: Vec<LineView>,
    pub total: Option<AmountView>,
    pub timeline: Vec<StepView>,
    pub trace_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize)]
pub struct CancellationView {
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct LineView {
    pub sku: String,
    pub quantity: i32,
    pub unit_price: Option<AmountView>,
}

#[derive(Debug, Serialize)]
pub struct AmountView {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub step: String,
    pub outcome: String,
    pub attempt: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl From<OrderRecord> for OrderView {
    fn from(record: OrderRecord) -> Self {
        let currency = record.currency.clone();
        let amount = |minor: Option<i64>| {
            minor.zip(currency.clone()).map(|(amount_minor, currency)| AmountView { amount_minor, currency })
        };
        Self {
            order_id: record.order_id,
            status: record.status,
            customer_id: record.customer_id,
            cancellation: record
                .cancellation_code
                .zip(record.cancellation_detail)
                .map(|(code, detail)| CancellationView { code, detail }),
            lines: record
                .lines
                .into_iter()
                .map(|line| LineView {
                    sku: line.sku,
                    quantity: line.quantity,
                    unit_price: amount(line.unit_price_minor),
                })
                .collect(),
            total: amount(record.total_minor),
            timeline: record
                .timeline
                .into_iter()
                .map(|s| StepView { step: s.step, outcome: s.outcome, attempt: s.attempt, detail: s.detail, at: s.at })
                .collect(),
            trace_id: record.trace_id,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}
