//! What the API answers, as JSON. Amounts are integer minor units with
//! their currency; a line's price is `null` until the inventory has quoted it.

use checkout_domain::{Money, OrderId};
use checkout_messages::payloads::saga::StepEntry;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Order, RecordedEvent, Status, Summary};
use crate::read_model::StalenessView;

/// `GET /orders/{order_id}`.
#[derive(Debug, Serialize)]
pub struct OrderView {
    pub order_id: OrderId,
    pub status: Status,
    pub customer_id: String,
    pub cancellation: Option<CancellationView>,
    /// Set once the customer asked to cancel.
    pub cancel_request: Option<CancelRequestView>,
    pub lines: Vec<LineView>,
    pub total: Option<AmountView>,
    pub timeline: Vec<StepView>,
    pub trace_id: Option<String>,
    /// The sequence number of the order's last event.
    pub version: u64,
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
pub struct CancelRequestView {
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// `pending` while the saga decides, then `cancelled` or `refused`.
    pub outcome: &'static str,
}

#[derive(Debug, Serialize)]
pub struct LineView {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: Option<AmountView>,
}

#[derive(Debug, Serialize)]
pub struct AmountView {
    pub amount_minor: i64,
    pub currency: String,
}

impl From<Money> for AmountView {
    fn from(money: Money) -> Self {
        Self { amount_minor: money.amount_minor(), currency: money.currency().code().to_owned() }
    }
}

#[derive(Debug, Serialize)]
pub struct StepView {
    #[serde(flatten)]
    pub entry: StepEntry,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl StepView {
    /// The entry shown at `at`: its own time, when it carries one, is `at`
    /// and is not repeated beside it.
    fn new(entry: StepEntry, at: OffsetDateTime) -> Self {
        Self { entry: StepEntry { at: None, ..entry }, at }
    }
}

impl From<Order> for OrderView {
    fn from(order: Order) -> Self {
        let outcome = match order.status {
            Status::Pending => "pending",
            Status::Cancelled => "cancelled",
            Status::Confirmed => "refused",
        };
        Self {
            order_id: order.order_id,
            status: order.status,
            customer_id: order.customer_id.as_str().to_owned(),
            cancellation: order
                .cancellation
                .map(|reason| CancellationView { code: reason.code.as_str().to_owned(), detail: reason.detail }),
            cancel_request: order.cancel_request.map(|request| CancelRequestView {
                reason: request.reason,
                requested_at: request.at,
                outcome,
            }),
            lines: order
                .lines
                .into_iter()
                .map(|line| LineView {
                    sku: line.sku.to_string(),
                    quantity: line.quantity.get(),
                    unit_price: line.unit_price.map(AmountView::from),
                })
                .collect(),
            total: order.total.map(AmountView::from),
            timeline: order.timeline.into_iter().map(|t| StepView::new(t.entry, t.at)).collect(),
            trace_id: order.trace_id,
            version: order.version,
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

/// `GET /orders/{order_id}/events`.
#[derive(Debug, Serialize)]
pub struct EventsView {
    pub order_id: OrderId,
    pub events: Vec<EventView>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub schema_version: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub causation_id: Option<Uuid>,
    pub correlation_id: Uuid,
    pub data: serde_json::Value,
}

impl EventView {
    pub fn of(recorded: &RecordedEvent) -> Result<Self, serde_json::Error> {
        let stored = recorded.event.to_stored()?;
        Ok(Self {
            seq: recorded.seq,
            event_id: recorded.event_id,
            event_type: recorded.event.event_type(),
            schema_version: stored.schema_version,
            at: recorded.at,
            causation_id: recorded.causation_id,
            correlation_id: recorded.correlation_id,
            data: stored.data,
        })
    }
}

/// `GET /orders`: a page of the read model, and how stale it may be.
#[derive(Debug, Serialize)]
pub struct OrderListView {
    pub orders: Vec<SummaryView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
    pub staleness: StalenessView,
}

#[derive(Debug, Serialize)]
pub struct SummaryView {
    pub order_id: OrderId,
    pub customer_id: Option<String>,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339::option")]
    pub placed_at: Option<OffsetDateTime>,
    pub total: Option<AmountView>,
    pub cancellation_code: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub cancel_requested_at: Option<OffsetDateTime>,
    pub last_step: Option<StepView>,
    /// The highest sequence of the order's stream the read model has seen:
    /// compare with `version` of `GET /orders/{order_id}` to tell whether it
    /// has caught up with the order.
    pub version: u64,
}

impl From<Summary> for SummaryView {
    fn from(summary: Summary) -> Self {
        Self {
            order_id: summary.order_id,
            customer_id: summary.customer_id,
            status: summary.status,
            placed_at: summary.placed_at,
            total: summary.total.map(AmountView::from),
            cancellation_code: summary.cancellation_code,
            cancel_requested_at: summary.cancel_requested_at,
            last_step: summary.last_step.map(|mark| StepView::new(mark.entry, mark.at)),
            version: summary.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use checkout_messages::payloads::saga::{SagaStepName, StepOutcome};

    use super::*;

    #[test]
    fn a_step_that_carries_its_own_time_shows_it_once() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let entry = StepEntry {
            step: SagaStepName::CapturePayment,
            outcome: StepOutcome::Succeeded,
            attempt: 1,
            detail: None,
            at: Some(at),
        };
        let json = serde_json::to_string(&StepView::new(entry, at)).unwrap();
        assert_eq!(json.matches("\"at\"").count(), 1, "{json}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap()["at"], "2027-01-15T08:00:00Z");
    }
}
