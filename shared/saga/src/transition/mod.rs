use checkout_domain::OrderId;
use checkout_messages::payloads::notification::NotificationKind;
use checkout_messages::payloads::order::{CancellationCode, CancellationReason, OrderPlaced};
use checkout_messages::payloads::saga::{StepEntry, StepOutcome};
use time::OffsetDateTime;

mod cancel;
mod forward;
mod operation;

pub use operation::{Operation, Refusal};

use crate::{
    ActiveStep, Command, ConfirmationEmail, Input, InventoryHold, PaymentHold, Phase, Saga, SagaPolicy, SagaState,
    SagaStatus, Step, Unfinished, Unreported,
};

/// The result of applying one input: the next saga, the commands to send,
/// and the timeline entries to publish now, all to be made durable together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub saga: Saga,
    pub commands: Vec<Command>,
    /// Entries to report now, oldest first: this transition's, after any the
    /// saga kept back before; empty while they wait (in the saga's
    /// `unreported`) to be reported with later ones.
    pub timeline: Vec<StepEntry>,
    /// Why the input changed nothing, when it did not.
    pub ignored: Option<Ignored>,
}

/// Why an input was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// A duplicate, or a reply to a step the saga is not waiting for.
    NotAwaited,
    /// The timer fired early or for a step that has since moved on.
    DeadlineNotDue,
    /// The saga has finished and the input needs no action.
    Finished,
    /// The customer's cancel came at or after the pivot: the order stands.
    CancelRefused,
    /// The customer's cancel came while the saga was already undoing.
    AlreadyCompensating,
}

impl Ignored {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAwaited => "not awaited",
            Self::DeadlineNotDue => "deadline not due",
            Self::Finished => "saga finished",
            Self::CancelRefused => "cancel refused: past the pivot",
            Self::AlreadyCompensating => "cancel needs nothing: already compensating",
        }
    }
}

impl Saga {
    /// Starts the saga for a placed order: reserve its inventory first.
    pub fn start(order_id: OrderId, placed: &OrderPlaced, now: OffsetDateTime, policy: &SagaPolicy) -> Transition {
        let first = Step::ReserveInventory;
        let active = ActiveStep { step: first, attempt: 1, deadline: now + policy.for_step(first).timeout_for(1) };
        let saga = Self {
            order_id,
            email: placed.email.clone(),
            lines: placed.lines.clone(),
            card_token: placed.card_token.clone(),
            phase: Phase::Reserving,
            inventory: InventoryHold::None,
            payment: PaymentHold::None,
            confirmation_email: ConfirmationEmail::None,
            state: SagaState::Running { active, alongside: None },
            unreported: None,
            started_at: now,
            updated_at: now,
        };
        let mut next = Next::new(saga, now, policy);
        next.begin(first, 1, None, None);
        next.finish()
    }

    /// Applies one input at time `now`.
    pub fn apply(&self, input: &Input, now: OffsetDateTime, policy: &SagaPolicy) -> Transition {
        let mut next = Next::new(self.clone(), now, policy);
        next.apply(input);
        next.finish()
    }
}

/// A transition being built.
struct Next<'a> {
    saga: Saga,
    /// The saga's status before the transition.
    from: SagaStatus,
    now: OffsetDateTime,
    policy: &'a SagaPolicy,
    commands: Vec<Command>,
    timeline: Vec<StepEntry>,
    ignored: Option<Ignored>,
}

impl<'a> Next<'a> {
    fn new(saga: Saga, now: OffsetDateTime, policy: &'a SagaPolicy) -> Self {
        let from = saga.status();
        Self { saga, from, now, policy, commands: Vec::new(), timeline: Vec::new(), ignored: None }
    }

    fn finish(mut self) -> Transition {
        if self.ignored.is_none() {
            self.saga.updated_at = self.now;
            self.timeline = self.report();
        }
        Transition { saga: self.saga, commands: self.commands, timeline: self.timeline, ignored: self.ignored }
    }

    /// The entries to report now: those kept back and this transition's,
    /// when the saga's status changes or it is neither running nor
    /// compensating. Otherwise none: they wait, to be reported with later
    /// ones or by the timer once the first has waited the policy's
    /// `report_delay`.
    fn report(&mut self) -> Vec<StepEntry> {
        let due = self.saga.report_due().unwrap_or(self.now + self.policy.report_delay);
        let mut entries = self.saga.take_unreported();
        entries.append(&mut self.timeline);
        let status = self.saga.status();
        let now = self.policy.report_delay.is_zero()
            || status != self.from
            || !matches!(status, SagaStatus::Running | SagaStatus::Compensating);
        if now || entries.is_empty() {
            return entries;
        }
        self.saga.unreported = Some(Unreported { due, entries });
        Vec::new()
    }

    fn record(&mut self, step: Step, outcome: StepOutcome, attempt: u32, detail: Option<String>) {
        self.timeline.push(StepEntry { step: step.wire_name(), outcome, attempt, detail, at: Some(self.now) });
    }

    fn apply(&mut self, input: &Input) {
        let active = self.saga.active().cloned();
        match (&self.saga.state, active) {
            (_, Some(_)) if matches!(input, Input::DeadlinePassed) => self.deadline_passed(),
            (_, _) if matches!(input, Input::CancelRequested { .. }) => self.cancel_requested(input),
            (SagaState::Running { .. }, Some(_)) => self.running(input),
            (SagaState::Compensating { .. }, Some(active)) => self.compensating(&active, input),
            (SagaState::NeedsAttention { step, compensation, .. }, None) if completes(*step, input) => {
                let (step, compensation) = (*step, compensation.clone());
                self.resume_after_late_reply(step, compensation, input);
            }
            _ => self.late(input),
        }
    }

    /// A step was given up (its attempts ran out), and now its reply
    /// arrives: the step did succeed, so the saga takes it and moves on —
    /// forward, or on with the compensation it was in — as if the reply had
    /// arrived in time.
    fn resume_after_late_reply(&mut self, step: Step, compensation: Option<Unfinished>, input: &Input) {
        // Attempt 0 marks the reply as arriving after the step was given up.
        let active = ActiveStep { step, attempt: 0, deadline: self.now };
        self.record(step, StepOutcome::Started, 0, Some("late reply after the step was given up".into()));
        if let Some(Unfinished { remaining, reason }) = compensation {
            self.saga.state = SagaState::Compensating { active: active.clone(), remaining, reason };
            self.compensating(&active, input);
        } else {
            self.saga.state = SagaState::Running { active, alongside: None };
            self.running(input);
        }
    }

    /// Compensations: each awaited reply moves to the next one.
    fn compensating(&mut self, active: &ActiveStep, input: &Input) {
        let awaited = match (active.step, input) {
            (Step::VoidPayment, Input::PaymentVoided) => {
                self.saga.payment = PaymentHold::Voided;
                true
            }
            (Step::ReleaseInventory, Input::InventoryReleased) => {
                self.saga.inventory = InventoryHold::Released;
                true
            }
            (Step::CancelOrder, Input::OrderCancelled)
            | (Step::NotifyCancellation, Input::CustomerNotified { kind: NotificationKind::OrderCancelled }) => true,
            _ => false,
        };
        if awaited {
            self.record(active.step, StepOutcome::Succeeded, active.attempt, None);
            if let SagaState::Compensating { remaining, reason, .. } = &self.saga.state {
                let (remaining, reason) = (remaining.clone(), reason.clone());
                self.next_compensation(remaining, reason);
            }
        } else {
            self.late(input);
        }
    }

    /// An input the saga was not waiting for. Only news that something is
    /// held which the saga has given back (or never wanted) needs action.
    fn late(&mut self, input: &Input) {
        let compensating_or_cancelled = matches!(
            self.saga.state,
            SagaState::Compensating { .. }
                | SagaState::Cancelled { .. }
                | SagaState::NeedsAttention { compensation: Some(_), .. }
        );
        match input {
            Input::PaymentAuthorized { .. }
                if compensating_or_cancelled
                    && matches!(self.saga.payment, PaymentHold::None | PaymentHold::Voided) =>
            {
                self.saga.payment = PaymentHold::VoidRequested;
                self.commands.push(Command::VoidPayment);
                self.record(Step::VoidPayment, StepOutcome::Started, 1, Some("voiding a late authorization".into()));
            }
            Input::InventoryReserved { .. }
                if compensating_or_cancelled
                    && matches!(self.saga.inventory, InventoryHold::None | InventoryHold::Released) =>
            {
                self.saga.inventory = InventoryHold::ReleaseRequested;
                self.commands.push(Command::ReleaseInventory);
                self.record(
                    Step::ReleaseInventory,
                    StepOutcome::Started,
                    1,
                    Some("releasing a late reservation".into()),
                );
            }
            // After the pivot, the reply of a step sent beside one that was
            // given up: bookkeeping, so that it is not sent again.
            Input::PaymentCaptured { amount } if self.saga.payment == PaymentHold::CaptureRequested => {
                self.saga.payment = PaymentHold::Captured;
                let detail = format!("captured {amount} while another step needs attention");
                self.record(Step::CapturePayment, StepOutcome::Succeeded, 0, Some(detail));
            }
            Input::CustomerNotified { kind: NotificationKind::OrderConfirmed }
                if self.saga.confirmation_email == ConfirmationEmail::Requested =>
            {
                self.saga.confirmation_email = ConfirmationEmail::Sent;
                let detail = "emailed while another step needs attention".to_owned();
                self.record(Step::NotifyCustomer, StepOutcome::Succeeded, 0, Some(detail));
            }
            // Replies to those extra compensations: bookkeeping only.
            Input::PaymentVoided if self.saga.payment == PaymentHold::VoidRequested => {
                self.saga.payment = PaymentHold::Voided;
                self.record(Step::VoidPayment, StepOutcome::Succeeded, 1, Some("late authorization voided".into()));
            }
            Input::InventoryReleased if self.saga.inventory == InventoryHold::ReleaseRequested => {
                self.saga.inventory = InventoryHold::Released;
                self.record(
                    Step::ReleaseInventory,
                    StepOutcome::Succeeded,
                    1,
                    Some("late reservation released".into()),
                );
            }
            _ if self.saga.active().is_none() => self.ignored = Some(Ignored::Finished),
            _ => self.ignored = Some(Ignored::NotAwaited),
        }
    }

    /// Every awaited step whose deadline has passed is sent again, or given up.
    fn deadline_passed(&mut self) {
        let due: Vec<ActiveStep> = self.saga.awaiting().filter(|active| self.now >= active.deadline).cloned().collect();
        if due.is_empty() {
            self.ignored = Some(Ignored::DeadlineNotDue);
        }
        for active in due {
            // Giving up the first may have ended the wait for the second.
            if self.saga.awaiting().any(|awaited| *awaited == active) {
                self.time_out(&active);
            }
        }
    }

    fn time_out(&mut self, active: &ActiveStep) {
        let policy = self.policy.for_step(active.step);
        if active.attempt < policy.max_attempts {
            self.record(active.step, StepOutcome::TimedOut, active.attempt, None);
            self.resend(active.step, active.attempt + 1, None);
            return;
        }
        let detail = format!("no reply after {} attempts", active.attempt);
        self.record(active.step, StepOutcome::TimedOut, active.attempt, Some(detail.clone()));
        match active.step {
            // The command may still take effect: holds stay `Requested`, so
            // compensation gives back whatever it might have taken.
            Step::ReserveInventory | Step::CommitInventory => {
                self.compensate(reason(CancellationCode::InventoryTimedOut, "the inventory did not answer".into()));
            }
            Step::AuthorizePayment => {
                self.compensate(reason(
                    CancellationCode::PaymentTimedOut,
                    "the payment provider did not answer".into(),
                ));
            }
            step => self.needs_attention(step, detail),
        }
    }

    /// Sends the awaited `step` again as attempt `attempt`, keeping whatever
    /// else the saga waits on.
    fn resend(&mut self, step: Step, attempt: u32, detail: Option<String>) {
        let cancellation = self.undoing().map(|undoing| undoing.reason);
        let Some(resent) = self.send(step, attempt, detail, cancellation) else {
            let undoing = self.undoing();
            return self.lacks_prices(step, undoing);
        };
        match &mut self.saga.state {
            SagaState::Running { active, alongside } => {
                for slot in std::iter::once(active).chain(alongside.as_mut()) {
                    if slot.step == step {
                        *slot = resent.clone();
                    }
                }
            }
            SagaState::Compensating { active, .. } if active.step == step => *active = resent,
            _ => {}
        }
    }

    /// Records every awaited forward step (or the one given up, as attempt
    /// 0) as failed for `detail` and compensates for `reason`: a customer's
    /// cancel or an operator's abort.
    fn stop(&mut self, detail: &str, reason: CancellationReason) {
        let mut stopped: Vec<(Step, u32)> = self.saga.awaiting().map(|active| (active.step, active.attempt)).collect();
        if let SagaState::NeedsAttention { step, .. } = &self.saga.state {
            stopped.push((*step, 0));
        }
        for (step, attempt) in stopped {
            self.record(step, StepOutcome::Failed, attempt, Some(detail.to_owned()));
        }
        self.compensate(reason);
    }

    /// Starts undoing, in reverse order, whatever may be held.
    fn compensate(&mut self, reason: CancellationReason) {
        let mut remaining = Vec::new();
        if matches!(self.saga.payment, PaymentHold::Requested | PaymentHold::Authorized) {
            remaining.push(Step::VoidPayment);
        }
        let stock_may_be_held = matches!(
            self.saga.inventory,
            InventoryHold::Requested | InventoryHold::Held | InventoryHold::CommitRequested | InventoryHold::Committed
        );
        if stock_may_be_held {
            // Committed stock is put back too: before the pivot nothing was promised.
            remaining.push(Step::ReleaseInventory);
        }
        remaining.extend([Step::CancelOrder, Step::NotifyCancellation]);
        self.next_compensation(remaining, reason);
    }

    /// Starts the first of `remaining`, or ends cancelled when none is left.
    fn next_compensation(&mut self, mut remaining: Vec<Step>, reason: CancellationReason) {
        if remaining.is_empty() {
            self.saga.state = SagaState::Cancelled { reason, at: self.now };
            return;
        }
        let step = remaining.remove(0);
        self.begin(step, 1, None, Some(Unfinished { remaining, reason }));
    }

    /// What is left to undo, while compensating.
    fn undoing(&self) -> Option<Unfinished> {
        match &self.saga.state {
            SagaState::Compensating { remaining, reason, .. } => {
                Some(Unfinished { remaining: remaining.clone(), reason: reason.clone() })
            }
            _ => None,
        }
    }

    fn needs_attention(&mut self, step: Step, detail: String) {
        let compensation = self.undoing();
        self.saga.state = SagaState::NeedsAttention { step, detail, at: self.now, compensation };
    }

    /// Sends `step`'s command as attempt `attempt` and waits for its reply
    /// alone: moving forward, or compensating when `undoing` says what is left.
    fn begin(&mut self, step: Step, attempt: u32, detail: Option<String>, undoing: Option<Unfinished>) {
        let cancellation = undoing.as_ref().map(|u| u.reason.clone());
        let Some(active) = self.send(step, attempt, detail, cancellation) else {
            return self.lacks_prices(step, undoing);
        };
        self.saga.state = match undoing {
            None => SagaState::Running { active, alongside: None },
            Some(Unfinished { remaining, reason }) => SagaState::Compensating { active, remaining, reason },
        };
    }

    /// Sends `step`'s command as attempt `attempt`: the step now awaited, or
    /// `None` when the saga lacks what the command carries.
    fn send(
        &mut self,
        step: Step,
        attempt: u32,
        detail: Option<String>,
        cancellation: Option<CancellationReason>,
    ) -> Option<ActiveStep> {
        let command = self.command_for(step, cancellation)?;
        self.commands.push(command);
        self.record(step, StepOutcome::Started, attempt, detail);
        let deadline = self.now + self.policy.for_step(step).timeout_for(attempt);
        Some(ActiveStep { step, attempt, deadline })
    }

    fn lacks_prices(&mut self, step: Step, undoing: Option<Unfinished>) {
        let detail = format!("cannot {step}: the saga lacks the prices the inventory quoted");
        self.saga.state = SagaState::NeedsAttention { step, detail, at: self.now, compensation: undoing };
    }

    /// The command for `step`, updating what the saga believes is held.
    fn command_for(&mut self, step: Step, cancellation: Option<CancellationReason>) -> Option<Command> {
        let saga = &mut self.saga;
        Some(match step {
            Step::ReserveInventory => {
                saga.inventory = InventoryHold::Requested;
                Command::ReserveInventory { lines: saga.lines.clone() }
            }
            Step::AuthorizePayment => {
                let amount = saga.phase.pricing()?.total();
                saga.payment = PaymentHold::Requested;
                Command::AuthorizePayment { amount, card_token: saga.card_token.clone() }
            }
            Step::ConfirmOrder => Command::ConfirmOrder { pricing: saga.phase.pricing()?.clone() },
            Step::CapturePayment => {
                let amount = saga.phase.pricing()?.total();
                saga.payment = PaymentHold::CaptureRequested;
                Command::CapturePayment { amount }
            }
            Step::CommitInventory => {
                saga.inventory = InventoryHold::CommitRequested;
                Command::CommitInventory
            }
            Step::NotifyCustomer => {
                let pricing = saga.phase.pricing()?.clone();
                saga.confirmation_email = ConfirmationEmail::Requested;
                Command::NotifyOrderConfirmed { email: saga.email.clone(), pricing }
            }
            Step::VoidPayment => {
                saga.payment = PaymentHold::VoidRequested;
                Command::VoidPayment
            }
            Step::ReleaseInventory => {
                saga.inventory = InventoryHold::ReleaseRequested;
                Command::ReleaseInventory
            }
            Step::CancelOrder => Command::CancelOrder { reason: cancellation?, pricing: saga.phase.pricing().cloned() },
            Step::NotifyCancellation => {
                Command::NotifyOrderCancelled { email: saga.email.clone(), reason: cancellation? }
            }
        })
    }
}

/// Whether `input` is the successful reply to `step`.
fn completes(step: Step, input: &Input) -> bool {
    matches!(
        (step, input),
        (Step::ConfirmOrder, Input::OrderConfirmed)
            | (Step::CapturePayment, Input::PaymentCaptured { .. })
            | (Step::CommitInventory, Input::InventoryCommitted)
            | (Step::NotifyCustomer, Input::CustomerNotified { kind: NotificationKind::OrderConfirmed })
            | (Step::VoidPayment, Input::PaymentVoided)
            | (Step::ReleaseInventory, Input::InventoryReleased)
            | (Step::CancelOrder, Input::OrderCancelled)
            | (Step::NotifyCancellation, Input::CustomerNotified { kind: NotificationKind::OrderCancelled })
    )
}

fn reason(code: CancellationCode, detail: String) -> CancellationReason {
    CancellationReason { code, detail }
}
