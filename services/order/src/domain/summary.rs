//! One row of the read model: what queries across orders need, folded from
//! the messages on `order.events` and `orchestrator.events`.
//!
//! Every field is merged so that the order in which messages arrive, and
//! how many times each arrives, do not matter: the placing fields are filled
//! once, the status only moves from `PENDING` to a final status, the version
//! is the highest per-order sequence seen, and the last step is the latest by
//! (time, message id). A redelivered or reordered message cannot corrupt a row,
//! and a replay from offset 0 rebuilds the same rows.

use checkout_domain::{Money, OrderId};
use checkout_messages::payloads::saga::StepEntry;
use checkout_messages::{Envelope, Message};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Status;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub order_id: OrderId,
    /// `None` until `OrderPlaced` has been seen.
    pub customer_id: Option<String>,
    pub placed_at: Option<OffsetDateTime>,
    pub status: Status,
    pub total: Option<Money>,
    pub cancellation_code: Option<String>,
    pub cancel_requested_at: Option<OffsetDateTime>,
    pub last_step: Option<StepMark>,
    /// The highest sequence of the order's stream seen (0: none carried one).
    pub version: u64,
    /// The newest message time folded in.
    pub updated_at: OffsetDateTime,
}

/// The saga's latest reported step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepMark {
    pub entry: StepEntry,
    pub at: OffsetDateTime,
    pub message_id: Uuid,
}

impl Summary {
    pub fn new(order_id: OrderId) -> Self {
        Self {
            order_id,
            customer_id: None,
            placed_at: None,
            status: Status::Pending,
            total: None,
            cancellation_code: None,
            cancel_requested_at: None,
            last_step: None,
            version: 0,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// Whether this message is one the read model folds.
    pub fn reads(message: &Message) -> bool {
        matches!(
            message,
            Message::OrderPlaced(_)
                | Message::OrderConfirmed(_)
                | Message::OrderCancelled(_)
                | Message::OrderCancellationRequested(_)
                | Message::SagaStepRecorded(_)
        )
    }

    /// Folds one message in; returns whether the row changed.
    pub fn apply(&mut self, envelope: &Envelope<Message>) -> bool {
        let before = self.clone();
        let at = envelope.time;
        match &envelope.payload {
            Message::OrderPlaced(placed) => {
                self.customer_id.get_or_insert_with(|| placed.customer_id.as_str().to_owned());
                self.placed_at = Some(self.placed_at.map_or(at, |t| t.min(at)));
            }
            Message::OrderConfirmed(confirmed) => {
                if self.status == Status::Pending {
                    self.status = Status::Confirmed;
                }
                self.total.get_or_insert(confirmed.total);
            }
            Message::OrderCancelled(cancelled) => {
                if self.status == Status::Pending {
                    self.status = Status::Cancelled;
                }
                self.cancellation_code.get_or_insert_with(|| cancelled.reason.code.as_str().to_owned());
            }
            Message::OrderCancellationRequested(_) => {
                self.cancel_requested_at = Some(self.cancel_requested_at.map_or(at, |t| t.min(at)));
            }
            Message::SagaStepRecorded(recorded) => {
                let mark = StepMark {
                    entry: recorded.latest(),
                    at: recorded.at.unwrap_or(at),
                    message_id: *envelope.id.as_uuid(),
                };
                let newer = self.last_step.as_ref().is_none_or(|m| (m.at, m.message_id) < (mark.at, mark.message_id));
                if newer {
                    self.last_step = Some(mark);
                }
            }
            _ => return false,
        }
        self.version = self.version.max(envelope.sequence.unwrap_or(0));
        self.updated_at = self.updated_at.max(at);
        *self != before
    }
}
