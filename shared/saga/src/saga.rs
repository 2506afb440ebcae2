use checkout_domain::{CardToken, EmailAddress, OrderId, OrderLines, Pricing};
use checkout_messages::payloads::order::CancellationReason;
use checkout_messages::payloads::saga::StepEntry;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Step;

/// Everything the orchestrator knows about one order's saga.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredShape")]
pub struct Saga {
    pub order_id: OrderId,
    pub email: EmailAddress,
    pub lines: OrderLines,
    pub card_token: CardToken,
    /// What the participants have told the saga so far.
    pub phase: Phase,
    /// What the inventory may be holding for this order.
    pub inventory: InventoryHold,
    /// What the payment provider may be holding for this order.
    pub payment: PaymentHold,
    /// Whether the customer was told the order is confirmed.
    pub confirmation_email: ConfirmationEmail,
    pub state: SagaState,
    /// Timeline entries recorded but not yet reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreported: Option<Unreported>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// How far the order has got, each phase carrying what the steps after it
/// need: no step can be sent without the prices it charges or confirms,
/// and an authorization never exists without the total it was for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The stock is asked for; nothing is priced yet.
    Reserving,
    /// The inventory reserved the stock and quoted its prices.
    Reserved { pricing: Pricing },
    /// The payment provider authorized the quoted total.
    Authorized { pricing: Pricing, authorization_id: String },
}

impl Phase {
    /// The prices the inventory quoted, once it has.
    pub fn pricing(&self) -> Option<&Pricing> {
        match self {
            Self::Reserving => None,
            Self::Reserved { pricing } | Self::Authorized { pricing, .. } => Some(pricing),
        }
    }
}

/// How a saga is read from storage: sagas saved before [`Phase`] kept
/// their prices and authorization in two optional fields.
#[derive(Deserialize)]
struct StoredShape {
    order_id: OrderId,
    email: EmailAddress,
    lines: OrderLines,
    card_token: CardToken,
    #[serde(default)]
    phase: Option<Phase>,
    #[serde(default)]
    pricing: Option<Pricing>,
    #[serde(default)]
    authorization_id: Option<String>,
    inventory: InventoryHold,
    payment: PaymentHold,
    #[serde(default)]
    confirmation_email: ConfirmationEmail,
    state: SagaState,
    #[serde(default)]
    unreported: Option<Unreported>,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<StoredShape> for Saga {
    fn from(stored: StoredShape) -> Self {
        let phase = stored.phase.unwrap_or(match (stored.pricing, stored.authorization_id) {
            (None, _) => Phase::Reserving,
            (Some(pricing), None) => Phase::Reserved { pricing },
            (Some(pricing), Some(authorization_id)) => Phase::Authorized { pricing, authorization_id },
        });
        Self {
            order_id: stored.order_id,
            email: stored.email,
            lines: stored.lines,
            card_token: stored.card_token,
            phase,
            inventory: stored.inventory,
            payment: stored.payment,
            confirmation_email: stored.confirmation_email,
            state: stored.state,
            unreported: stored.unreported,
            started_at: stored.started_at,
            updated_at: stored.updated_at,
        }
    }
}

/// The inventory side, as far as the saga can tell. `Requested` means the
/// outcome is unknown, so stock may be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InventoryHold {
    None,
    Requested,
    Held,
    ReleaseRequested,
    Released,
    CommitRequested,
    Committed,
}

/// The payment side, as far as the saga can tell. `Requested` means the
/// authorization's outcome is unknown, so money may be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentHold {
    None,
    Requested,
    Authorized,
    VoidRequested,
    Voided,
    CaptureRequested,
    Captured,
}

/// The confirmation email, as far as the saga can tell. (Sagas saved before
/// it was kept read back as `None`: they send it after the capture.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationEmail {
    #[default]
    None,
    Requested,
    Sent,
}

/// Timeline entries a saga has recorded and not yet reported, oldest first,
/// and when they are to be reported at the latest (the first one's time plus
/// the policy's `report_delay`).
///
/// A saga reports its steps when its status changes and when it ends;
/// between those its entries wait here, so that a confirmed checkout's
/// seven transitions make one report, not seven. A saga that waits longer
/// than the delay has its entries reported by the timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreported {
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
    pub entries: Vec<StepEntry>,
}

/// A step waiting for its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveStep {
    pub step: Step,
    /// From 1; each timeout resends the command as the next attempt.
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SagaState {
    /// Moving forward: waiting for `active`'s reply, and for `alongside`'s
    /// when two steps that need nothing of each other were sent together
    /// (authorizing the payment and committing the stock; capturing the
    /// payment and emailing the customer).
    Running {
        active: ActiveStep,
        /// Optional in storage: sagas saved before steps ran side by side have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alongside: Option<ActiveStep>,
    },
    /// Undoing: waiting for `active`'s reply, then the `remaining` compensations.
    Compensating { active: ActiveStep, remaining: Vec<Step>, reason: CancellationReason },
    /// The order is confirmed, paid, committed and the customer emailed.
    Completed {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Everything that was held is given back and the customer told why.
    Cancelled {
        reason: CancellationReason,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A step that must not be compensated could not be completed: an
    /// operator decides (e.g. a capture that keeps failing after the order
    /// was confirmed).
    NeedsAttention {
        step: Step,
        detail: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// When `step` is a compensation: what was still to undo, and why,
        /// so that a late reply or an operator's retry carries on from there.
        /// (Optional in storage: sagas saved before it was kept have none.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compensation: Option<Unfinished>,
    },
}

/// A compensation that stopped at a step: the steps after it and the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unfinished {
    pub remaining: Vec<Step>,
    pub reason: CancellationReason,
}

/// The saga's state without its data, for storage and queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SagaStatus {
    Running,
    Compensating,
    Completed,
    Cancelled,
    NeedsAttention,
}

impl SagaStatus {
    pub const ALL: [Self; 5] =
        [Self::Running, Self::Compensating, Self::Completed, Self::Cancelled, Self::NeedsAttention];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Compensating => "compensating",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::NeedsAttention => "needs_attention",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::NeedsAttention)
    }
}

impl Saga {
    pub fn status(&self) -> SagaStatus {
        match self.state {
            SagaState::Running { .. } => SagaStatus::Running,
            SagaState::Compensating { .. } => SagaStatus::Compensating,
            SagaState::Completed { .. } => SagaStatus::Completed,
            SagaState::Cancelled { .. } => SagaStatus::Cancelled,
            SagaState::NeedsAttention { .. } => SagaStatus::NeedsAttention,
        }
    }

    /// The step waiting for a reply, if any: the first, when two are.
    pub fn active(&self) -> Option<&ActiveStep> {
        self.awaiting().next()
    }

    /// Every step waiting for a reply.
    pub fn awaiting(&self) -> impl Iterator<Item = &ActiveStep> {
        let (active, alongside) = match &self.state {
            SagaState::Running { active, alongside } => (Some(active), alongside.as_ref()),
            SagaState::Compensating { active, .. } => (Some(active), None),
            _ => (None, None),
        };
        active.into_iter().chain(alongside)
    }

    /// When the orchestrator's timer must wake this saga: the earliest
    /// deadline of the steps it waits on.
    pub fn deadline(&self) -> Option<OffsetDateTime> {
        self.awaiting().map(|active| active.deadline).min()
    }

    /// When the orchestrator's timer must report the entries the saga kept
    /// back, if it kept any.
    pub fn report_due(&self) -> Option<OffsetDateTime> {
        self.unreported.as_ref().map(|unreported| unreported.due)
    }

    /// The entries the saga kept back, oldest first, now to be reported.
    pub fn take_unreported(&mut self) -> Vec<StepEntry> {
        self.unreported.take().map_or_else(Vec::new, |unreported| unreported.entries)
    }
}
