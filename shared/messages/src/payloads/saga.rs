//! Messages on `orchestrator.events`: the saga's progress, from which the
//! order service keeps each order's step timeline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One step of an order's saga changed state. The envelope's `time` is when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct SagaStepRecorded {
    pub step: SagaStepName,
    pub outcome: StepOutcome,
    /// Which attempt of the step this was, from 1.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum SagaStepName {
    ReserveInventory,
    AuthorizePayment,
    ConfirmOrder,
    CapturePayment,
    CommitInventory,
    NotifyCustomer,
    VoidPayment,
    ReleaseInventory,
    CancelOrder,
    NotifyCancellation,
    #[serde(other)]
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// The step's command was sent.
    Started,
    Succeeded,
    /// The participant answered no; compensation follows if the step is before the pivot.
    Failed,
    /// No answer in time; the step is retried or compensated per its policy.
    TimedOut,
    #[serde(other)]
    Other,
}
