//! The events of an order's stream, and how they are stored: a type name, a
//! schema version and a JSON body, so that a newer build can add fields
//! (minor) or change an event's shape (major, read by an upcaster here).

use checkout_domain::{CustomerId, EmailAddress, Money, OrderLines, Pricing};
use checkout_messages::payloads::order::CancellationReason;
use checkout_messages::payloads::saga::StepEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// Something that happened to an order. Never changed once appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OrderEvent {
    /// The customer checked out: always the first event.
    #[serde(rename = "OrderPlaced")]
    Placed(Placed),
    /// The inventory quoted the lines' prices.
    #[serde(rename = "OrderPriced")]
    Priced { pricing: Pricing },
    /// The orchestrator reported saga progress (`reported_at` is its clock).
    #[serde(rename = "SagaStepsRecorded")]
    StepsRecorded {
        entries: Vec<StepEntry>,
        #[serde(with = "time::serde::rfc3339")]
        reported_at: OffsetDateTime,
    },
    /// The customer asked to cancel while the order was pending.
    #[serde(rename = "OrderCancellationRequested")]
    CancellationRequested {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The pivot: the order is promised to the customer.
    #[serde(rename = "OrderConfirmed")]
    Confirmed { total: Money },
    #[serde(rename = "OrderCancelled")]
    Cancelled { reason: CancellationReason },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub customer_id: CustomerId,
    pub email: EmailAddress,
    pub lines: OrderLines,
    /// The trace of the request that placed the order, to find it in Jaeger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// An event as it sits in the stream: its position, identity, time and lineage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// From 1, without gaps, per order.
    pub seq: u64,
    pub event_id: Uuid,
    /// The database's clock when appended; strictly increasing per order.
    pub at: OffsetDateTime,
    /// The message that caused the change; `None` for a customer's request.
    pub causation_id: Option<Uuid>,
    /// The checkout's conversation (the id of its `OrderPlaced` message).
    pub correlation_id: Uuid,
    pub event: OrderEvent,
}

/// An event's body as stored: `event_type`, `schema_version` (major) and `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
}

/// Every event is at major version 1 today.
const CURRENT_MAJOR: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("{event_type} version {version} is newer than this build reads ({CURRENT_MAJOR})")]
    NewerVersion { event_type: String, version: i32 },
    #[error("{event_type} could not be read: {source}")]
    Invalid {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

impl OrderEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Placed(_) => "OrderPlaced",
            Self::Priced { .. } => "OrderPriced",
            Self::StepsRecorded { .. } => "SagaStepsRecorded",
            Self::CancellationRequested { .. } => "OrderCancellationRequested",
            Self::Confirmed { .. } => "OrderConfirmed",
            Self::Cancelled { .. } => "OrderCancelled",
        }
    }

    pub fn to_stored(&self) -> Result<StoredEvent, serde_json::Error> {
        let mut tagged = serde_json::to_value(self)?;
        let data = tagged.get_mut("data").map_or(Value::Null, Value::take);
        Ok(StoredEvent { event_type: self.event_type().to_owned(), schema_version: CURRENT_MAJOR, data })
    }

    pub fn from_stored(stored: StoredEvent) -> Result<Self, EventDecodeError> {
        let StoredEvent { event_type, schema_version, data } = stored;
        if schema_version > CURRENT_MAJOR {
            return Err(EventDecodeError::NewerVersion { event_type, version: schema_version });
        }
        let tagged = serde_json::json!({ "type": event_type, "data": data });
        serde_json::from_value(tagged).map_err(|source| EventDecodeError::Invalid { event_type, source })
    }
}

#[cfg(test)]
mod tests {
    use checkout_messages::payloads::order::CancellationCode;

    use super::*;

    #[test]
    fn an_event_survives_storage() {
        let event = OrderEvent::Cancelled {
            reason: CancellationReason { code: CancellationCode::CustomerCancelled, detail: "changed my mind".into() },
        };
        let stored = event.to_stored().unwrap();
        assert_eq!((stored.event_type.as_str(), stored.schema_version), ("OrderCancelled", 1));
        assert_eq!(stored.data["reason"]["code"], "customer_cancelled");
        assert_eq!(OrderEvent::from_stored(stored).unwrap(), event);
    }

    #[test]
    fn a_newer_major_or_a_bad_body_is_refused_not_guessed() {
        let newer = StoredEvent { event_type: "OrderConfirmed".into(), schema_version: 2, data: Value::Null };
        assert!(matches!(OrderEvent::from_stored(newer), Err(EventDecodeError::NewerVersion { .. })));
        let bad = StoredEvent { event_type: "OrderConfirmed".into(), schema_version: 1, data: serde_json::json!({}) };
        assert!(matches!(OrderEvent::from_stored(bad), Err(EventDecodeError::Invalid { .. })));
    }
}
