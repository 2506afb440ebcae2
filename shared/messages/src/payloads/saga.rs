//! Messages on `orchestrator.events`: the saga's progress, from which the
//! order service keeps each order's step timeline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One step of an order's saga changed state. The envelope's `time` is when.
///
/// Since 1.1 one record carries everything one saga transition recorded: the
/// latest entry in the fields of 1.0, the ones before it (e.g. the step that
/// succeeded just before the next one started) in `earlier`. A reader of 1.0
/// sees the latest entry only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct SagaStepRecorded {
    pub step: SagaStepName,
    pub outcome: StepOutcome,
    /// Which attempt of the step this was, from 1.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Entries recorded by the same transition before this one, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<StepEntry>,
}

/// One entry of a saga's step timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct StepEntry {
    pub step: SagaStepName,
    pub outcome: StepOutcome,
    /// Which attempt of the step this was, from 1.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl SagaStepRecorded {
    /// One record of a transition's entries, given oldest first; `None` when
    /// there are none.
    pub fn of_entries(mut entries: Vec<StepEntry>) -> Option<Self> {
        let StepEntry { step, outcome, attempt, detail } = entries.pop()?;
        Some(Self { step, outcome, attempt, detail, earlier: entries })
    }

    /// The entry the record is about: the transition's last.
    pub fn latest(&self) -> StepEntry {
        StepEntry { step: self.step, outcome: self.outcome, attempt: self.attempt, detail: self.detail.clone() }
    }

    /// Every entry the record carries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = StepEntry> + '_ {
        self.earlier.iter().cloned().chain(std::iter::once(self.latest()))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(step: SagaStepName, outcome: StepOutcome) -> StepEntry {
        StepEntry { step, outcome, attempt: 1, detail: None }
    }

    #[test]
    fn a_transitions_entries_travel_in_one_record_the_latest_in_front() {
        let entries = vec![
            entry(SagaStepName::ReserveInventory, StepOutcome::Succeeded),
            entry(SagaStepName::AuthorizePayment, StepOutcome::Started),
        ];
        let recorded = SagaStepRecorded::of_entries(entries.clone()).unwrap();
        assert_eq!((recorded.step, recorded.outcome), (SagaStepName::AuthorizePayment, StepOutcome::Started));
        assert_eq!(recorded.entries().collect::<Vec<_>>(), entries);
        assert_eq!(SagaStepRecorded::of_entries(Vec::new()), None);
    }

    #[test]
    fn a_one_point_zero_record_reads_as_its_single_entry() {
        let recorded: SagaStepRecorded =
            serde_json::from_str(r#"{"step":"confirm_order","outcome":"succeeded","attempt":2}"#).unwrap();
        let only =
            StepEntry { step: SagaStepName::ConfirmOrder, outcome: StepOutcome::Succeeded, attempt: 2, detail: None };
        assert_eq!(recorded.entries().collect::<Vec<_>>(), [only]);
    }
}
