//! The order as the fold of its events, and the decisions taken on it.

use checkout_domain::{CustomerId, EmailAddress, Money, OrderId, Pricing, Quantity, Sku};
use checkout_messages::payloads::order::CancellationReason;
use checkout_messages::payloads::saga::StepEntry;
use serde::Serialize;
use time::OffsetDateTime;

use super::{NewOrder, OrderEvent, Placed, RecordedEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "TEXT", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The saga is running: the semantic lock. Only the orchestrator's
    /// confirm or cancel ends it; a customer's cancel is a request to it.
    Pending,
    Confirmed,
    Cancelled,
}

impl Status {
    pub const ALL: [Self; 3] = [Self::Pending, Self::Confirmed, Self::Cancelled];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// An order as it stands after some prefix of its stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub email: EmailAddress,
    pub status: Status,
    pub lines: Vec<Line>,
    /// Known once the inventory has priced the lines.
    pub total: Option<Money>,
    pub cancellation: Option<CancellationReason>,
    pub cancel_request: Option<CancelRequest>,
    pub timeline: Vec<TimelineEntry>,
    pub trace_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The sequence number of the last event folded in.
    pub version: u64,
    /// The checkout's conversation, for messages sent about the order.
    pub correlation_id: uuid::Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Option<Money>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelRequest {
    pub reason: Option<String>,
    pub at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    pub entry: StepEntry,
    /// When the orchestrator reported it.
    pub at: OffsetDateTime,
}

/// A stream that is not the history of an order: a bug or damage, never
/// something a decision here produces.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("event {seq} comes before the order was placed")]
    NotPlaced { seq: u64 },
    #[error("event {seq} places an order that was already placed")]
    PlacedTwice { seq: u64 },
    #[error("event {got} follows event {after}: the stream has a gap")]
    Gap { after: u64, got: u64 },
    #[error("event {seq} ({event}) cannot happen to an order that is {status:?}")]
    Impossible { seq: u64, event: &'static str, status: Status },
}

/// A command that contradicts the order (e.g. confirm a cancelled order).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the order is {}: {what} contradicts it", .status.as_str())]
pub struct Contradiction {
    pub status: Status,
    pub what: &'static str,
}

/// What a customer's cancel request comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelDecision {
    /// Pending and not yet asked: append this event and tell the orchestrator.
    Request(OrderEvent),
    /// Pending, and already asked: nothing changes.
    AlreadyRequested,
    /// Cancelled already (for this reason or another): nothing changes.
    AlreadyCancelled,
    /// Confirmed: the pivot has passed, the order stands.
    Refused,
}

impl Order {
    /// The order after `events` (in stream order; an event at or below the
    /// version already reached changes nothing, so folding a stream twice is
    /// folding it once). `None` for an empty stream.
    pub fn fold<'a>(
        order_id: OrderId,
        events: impl IntoIterator<Item = &'a RecordedEvent>,
    ) -> Result<Option<Self>, FoldError> {
        let mut order: Option<Self> = None;
        for recorded in events {
            match &mut order {
                Some(order) => order.apply(recorded)?,
                None => order = Some(Self::placed(order_id, recorded)?),
            }
        }
        Ok(order)
    }

    fn placed(order_id: OrderId, recorded: &RecordedEvent) -> Result<Self, FoldError> {
        let OrderEvent::Placed(Placed { customer_id, email, lines, trace_id }) = &recorded.event else {
            return Err(FoldError::NotPlaced { seq: recorded.seq });
        };
        if recorded.seq != 1 {
            return Err(FoldError::Gap { after: 0, got: recorded.seq });
        }
        Ok(Self {
            order_id,
            customer_id: customer_id.clone(),
            email: email.clone(),
            status: Status::Pending,
            lines: lines.iter().map(|l| Line { sku: l.sku.clone(), quantity: l.quantity, unit_price: None }).collect(),
            total: None,
            cancellation: None,
            cancel_request: None,
            timeline: Vec::new(),
            trace_id: trace_id.clone(),
            created_at: recorded.at,
            updated_at: recorded.at,
            version: recorded.seq,
            correlation_id: recorded.correlation_id,
        })
    }

    /// Folds one more event in.
    pub fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), FoldError> {
        let seq = recorded.seq;
        if seq <= self.version {
            return Ok(());
        }
        if seq != self.version + 1 {
            return Err(FoldError::Gap { after: self.version, got: seq });
        }
        let impossible = || FoldError::Impossible { seq, event: recorded.event.event_type(), status: self.status };
        match (&recorded.event, self.status) {
            (OrderEvent::Placed(_), _) => return Err(FoldError::PlacedTwice { seq }),
            (OrderEvent::Priced { pricing }, Status::Pending) => self.price(pricing),
            (OrderEvent::StepsRecorded { entries, reported_at }, _) => {
                // An entry carries its own time since 1.2 of the report;
                // before, every entry of a report was made when it was.
                self.timeline.extend(
                    entries
                        .iter()
                        .map(|entry| TimelineEntry { entry: entry.clone(), at: entry.at.unwrap_or(*reported_at) }),
                );
            }
            (OrderEvent::CancellationRequested { reason }, Status::Pending) if self.cancel_request.is_none() => {
                self.cancel_request = Some(CancelRequest { reason: reason.clone(), at: recorded.at });
            }
            (OrderEvent::Confirmed { total }, Status::Pending) => {
                self.status = Status::Confirmed;
                self.total = Some(*total);
            }
            (OrderEvent::Cancelled { reason }, Status::Pending) => {
                self.status = Status::Cancelled;
                self.cancellation = Some(reason.clone());
            }
            _ => return Err(impossible()),
        }
        self.version = seq;
        self.updated_at = recorded.at;
        Ok(())
    }

    fn price(&mut self, pricing: &Pricing) {
        for line in &mut self.lines {
            line.unit_price = pricing.lines().iter().find(|p| p.sku == line.sku).map(|p| p.unit_price);
        }
        self.total = Some(pricing.total());
    }

    /// The first event of a new order.
    pub fn place(order: &NewOrder, trace_id: Option<String>) -> OrderEvent {
        OrderEvent::Placed(Placed {
            customer_id: order.customer_id.clone(),
            email: order.email.clone(),
            lines: order.lines.clone(),
            trace_id,
        })
    }

    /// The orchestrator confirms: the prices it agreed, then the pivot.
    /// Confirming a confirmed order again adds nothing.
    pub fn confirm(&self, pricing: &Pricing) -> Result<Vec<OrderEvent>, Contradiction> {
        match self.status {
            Status::Pending => Ok(vec![
                OrderEvent::Priced { pricing: pricing.clone() },
                OrderEvent::Confirmed { total: pricing.total() },
            ]),
            Status::Confirmed => Ok(Vec::new()),
            Status::Cancelled => Err(Contradiction { status: self.status, what: "ConfirmOrder" }),
        }
    }

    /// The orchestrator cancels, with the prices if any were quoted.
    /// Cancelling a cancelled order again adds nothing.
    pub fn cancel(
        &self,
        reason: &CancellationReason,
        pricing: Option<&Pricing>,
    ) -> Result<Vec<OrderEvent>, Contradiction> {
        match self.status {
            Status::Pending => Ok(pricing
                .map(|pricing| OrderEvent::Priced { pricing: pricing.clone() })
                .into_iter()
                .chain([OrderEvent::Cancelled { reason: reason.clone() }])
                .collect()),
            Status::Cancelled => Ok(Vec::new()),
            Status::Confirmed => Err(Contradiction { status: self.status, what: "CancelOrder" }),
        }
    }

    /// A customer asks to cancel. Only the orchestrator can tell whether the
    /// saga is still before its pivot, so a pending order records the
    /// request and passes it on; the answer comes back as a confirm or a
    /// cancel.
    pub fn request_cancellation(&self, reason: Option<String>) -> CancelDecision {
        match (self.status, &self.cancel_request) {
            (Status::Pending, None) => CancelDecision::Request(OrderEvent::CancellationRequested { reason }),
            (Status::Pending, Some(_)) => CancelDecision::AlreadyRequested,
            (Status::Cancelled, _) => CancelDecision::AlreadyCancelled,
            (Status::Confirmed, _) => CancelDecision::Refused,
        }
    }

    /// Saga progress, as the orchestrator reported it at `reported_at`.
    pub fn record_steps(entries: Vec<StepEntry>, reported_at: OffsetDateTime) -> OrderEvent {
        OrderEvent::StepsRecorded { entries, reported_at }
    }
}
