//! Messages on `orchestrator.events`: the saga's progress, from which the
//! order service keeps each order's step timeline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One step of an order's saga changed state.
///
/// Since 1.1 one record carries everything one saga transition recorded: the
/// latest entry in the fields of 1.0, the ones before it (e.g. the step that
/// succeeded just before the next one started) in `earlier`. A reader of 1.0
/// sees the latest entry only.
///
/// Since 1.2 the orchestrator reports a saga's entries in fewer records: one
/// record may carry the entries of several transitions, each with its own
/// time (`at`; a record without one was made when its envelope says), and
/// `finished` says the saga has ended with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct SagaStepRecorded {
    pub step: SagaStepName,
    pub outcome: StepOutcome,
    /// Which attempt of the step this was, from 1.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the saga recorded the latest entry (since 1.2).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(super::arbitrary_time())"))]
    pub at: Option<OffsetDateTime>,
    /// Entries recorded before the latest, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<StepEntry>,
    /// The saga completed or was cancelled: nothing more will be recorded
    /// (since 1.2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finished: bool,
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
    /// When the saga recorded it (since 1.2 of `SagaStepRecorded`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    #[cfg_attr(feature = "arbitrary", proptest(strategy = "proptest::option::of(super::arbitrary_time())"))]
    pub at: Option<OffsetDateTime>,
}

impl SagaStepRecorded {
    /// One record of entries given oldest first, saying whether the saga
    /// `finished` with them; `None` when there are none.
    pub fn of_entries(mut entries: Vec<StepEntry>, finished: bool) -> Option<Self> {
        let StepEntry { step, outcome, attempt, detail, at } = entries.pop()?;
        Some(Self { step, outcome, attempt, detail, at, earlier: entries, finished })
    }

    /// The entry the record is about: the last.
    pub fn latest(&self) -> StepEntry {
        StepEntry {
            step: self.step,
            outcome: self.outcome,
            attempt: self.attempt,
            detail: self.detail.clone(),
            at: self.at,
        }
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
        StepEntry { step, outcome, attempt: 1, detail: None, at: None }
    }

    #[test]
    fn a_transitions_entries_travel_in_one_record_the_latest_in_front() {
        let entries = vec![
            entry(SagaStepName::ReserveInventory, StepOutcome::Succeeded),
            entry(SagaStepName::AuthorizePayment, StepOutcome::Started),
        ];
        let recorded = SagaStepRecorded::of_entries(entries.clone(), false).unwrap();
        assert_eq!((recorded.step, recorded.outcome), (SagaStepName::AuthorizePayment, StepOutcome::Started));
        assert_eq!(recorded.entries().collect::<Vec<_>>(), entries);
        assert_eq!(SagaStepRecorded::of_entries(Vec::new(), true), None);
    }

    #[test]
    fn a_one_point_zero_record_reads_as_its_single_entry() {
        let recorded: SagaStepRecorded =
            serde_json::from_str(r#"{"step":"confirm_order","outcome":"succeeded","attempt":2}"#).unwrap();
        let only = StepEntry {
            step: SagaStepName::ConfirmOrder,
            outcome: StepOutcome::Succeeded,
            attempt: 2,
            detail: None,
            at: None,
        };
        assert_eq!(recorded.entries().collect::<Vec<_>>(), [only]);
        assert!(!recorded.finished);
    }

    #[test]
    fn entries_of_several_transitions_keep_their_own_times_and_the_end_is_marked() {
        let at = |s| Some(OffsetDateTime::from_unix_timestamp(s).unwrap());
        let entries = vec![
            StepEntry { at: at(10), ..entry(SagaStepName::CapturePayment, StepOutcome::Succeeded) },
            StepEntry { at: at(12), ..entry(SagaStepName::NotifyCustomer, StepOutcome::Succeeded) },
        ];
        let recorded = SagaStepRecorded::of_entries(entries.clone(), true).unwrap();
        let json = serde_json::to_value(&recorded).unwrap();
        assert_eq!(json["at"], "1970-01-01T00:00:12Z");
        assert_eq!(json["earlier"][0]["at"], "1970-01-01T00:00:10Z");
        assert_eq!(json["finished"], true);
        let back: SagaStepRecorded = serde_json::from_value(json).unwrap();
        assert_eq!(back.entries().collect::<Vec<_>>(), entries);
        assert!(back.finished);
    }
}
