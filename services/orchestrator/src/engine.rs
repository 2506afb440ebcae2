//! Making a transition durable: the saga, its history entry, the commands it
//! sends and the timeline it publishes, all in the caller's transaction.

use checkout_domain::OrderId;
use checkout_kafka::RecordHeaders;
use checkout_messages::payloads::inventory::{CommitInventory, ReleaseInventory, ReserveInventory};
use checkout_messages::payloads::notification::{NotifyOrderCancelled, NotifyOrderConfirmed};
use checkout_messages::payloads::order::{CancelOrder, ConfirmOrder};
use checkout_messages::payloads::payment::{AuthorizePayment, CapturePayment, VoidPayment};
use checkout_messages::payloads::saga::{SagaStepRecorded, StepEntry};
use checkout_messages::{CorrelationId, Envelope, Message, MessageId, Source};
use checkout_outbox::{UnitOfWork, new_message_id};
use checkout_saga::{Command, Saga, SagaStatus, Transition};
use opentelemetry::trace::TraceContextExt;
use time::OffsetDateTime;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::store::{Census, Pending, StoredSaga, TransitionRecord};

/// What caused a transition, for the lineage of the messages it sends.
#[derive(Clone, Debug)]
#[allow(clippy::struct_field_names, reason = "they are all ids, and named as in the envelope")]
pub struct Cause {
    pub correlation_id: CorrelationId,
    pub causation_id: MessageId,
    /// The message applied; `None` when the timer fired.
    pub message_id: Option<MessageId>,
    /// The span that produced the input: the sender's span for a message,
    /// the saga's last span for a timeout.
    pub origin_traceparent: Option<String>,
    /// The failure the saga's compensation answers, if it is compensating.
    pub failure_traceparent: Option<String>,
    /// The operator who asked for the transition, and why.
    pub operator: Option<(String, String)>,
}

impl Cause {
    pub fn message(envelope: &Envelope<Message>, headers: &RecordHeaders, stored: Option<&StoredSaga>) -> Self {
        Self {
            correlation_id: envelope.correlation_id,
            causation_id: envelope.id,
            message_id: Some(envelope.id),
            origin_traceparent: headers.get_str(checkout_kafka::header_names::TRACEPARENT).map(str::to_owned),
            failure_traceparent: stored.and_then(|s| s.failure_traceparent.clone()),
            operator: None,
        }
    }

    /// The timer: the lineage continues from the last message the saga applied.
    pub fn timer(stored: &StoredSaga) -> Self {
        Self {
            correlation_id: stored.correlation_id,
            causation_id: stored.last_message_id,
            message_id: None,
            origin_traceparent: stored.traceparent.clone(),
            failure_traceparent: stored.failure_traceparent.clone(),
            operator: None,
        }
    }

    /// An operator's action: like the timer, it continues the saga's lineage.
    pub fn operator(stored: &StoredSaga, operator: &str, reason: &str) -> Self {
        Self { operator: Some((operator.to_owned(), reason.to_owned())), ..Self::timer(stored) }
    }

    fn envelope(&self, source: &Source, order: OrderId, time: OffsetDateTime, payload: Message) -> Envelope<Message> {
        Envelope {
            id: new_message_id(),
            source: source.clone(),
            subject: order,
            time,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            sequence: None,
            payload,
        }
    }
}

/// A saga's move from one state to another, to be counted once the
/// transaction that made it has committed (a rolled-back or retried
/// transition is not counted twice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "count it once the transaction has committed"]
pub struct Moved {
    from: Option<SagaStatus>,
    to: SagaStatus,
    started_at: OffsetDateTime,
    at: OffsetDateTime,
}

impl Moved {
    /// How a saga that ends with this move finished, as the metrics name it.
    fn outcome(self) -> Option<&'static str> {
        if self.from == Some(self.to) {
            return None;
        }
        match self.to {
            SagaStatus::Completed => Some("completed"),
            SagaStatus::Cancelled => Some("compensated"),
            SagaStatus::NeedsAttention => Some("needs_attention"),
            SagaStatus::Running | SagaStatus::Compensating => None,
        }
    }

    /// Counts the move: a saga started, or finished (with its duration).
    pub fn count(self) {
        if self.from.is_none() {
            metrics::counter!("checkout_sagas_started_total").increment(1);
        }
        if let Some(outcome) = self.outcome() {
            metrics::counter!(format!("checkout_sagas_{outcome}_total")).increment(1);
            metrics::histogram!("checkout_saga_duration_seconds", "outcome" => outcome)
                .record((self.at - self.started_at).as_seconds_f64().max(0.0));
        }
    }
}

/// Registers the saga counters at zero, so that they are exported (and
/// `rate()` works) before the first saga.
pub fn export_zeroes() {
    for name in ["started", "completed", "compensated", "needs_attention"] {
        metrics::counter!(format!("checkout_sagas_{name}_total")).absolute(0);
    }
    metrics::counter!("checkout_saga_deadlines_held_total").absolute(0);
    metrics::counter!("checkout_saga_quarantined_total").absolute(0);
}

/// Sets the gauges of unfinished sagas: per state, and stuck.
pub fn export(census: &Census) {
    for status in [SagaStatus::Running, SagaStatus::Compensating, SagaStatus::NeedsAttention] {
        let sagas = census.by_status.iter().find(|(known, _)| *known == status).map_or(0, |(_, sagas)| *sagas);
        // Saga counts are far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("checkout_sagas", "state" => status.as_str()).set(sagas as f64);
    }
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("checkout_sagas_stuck").set(census.stuck as f64);
}

/// Makes a transition of the saga as `read` (`None`: a new saga) happen in
/// `work`: sends its commands and its timeline, and gives back the move to
/// count after the commit and what to write ([`store::add_transitions`],
/// once for all the transitions of a unit of work).
pub fn record(
    work: &mut UnitOfWork,
    read: Option<&StoredSaga>,
    transition: Transition,
    input: &str,
    cause: &Cause,
    source: &Source,
    now: OffsetDateTime,
) -> (Moved, Pending) {
    let saga = transition.saga;
    let from = read.map(|stored| stored.saga.status());
    let moved = Moved { from, to: saga.status(), started_at: saga.started_at, at: now };
    let order = saga.order_id;
    let span = tracing::Span::current();
    // Compensation starts: remember the span that reported the failure (or,
    // for a timeout, the span of the step that went unanswered), and link
    // every compensation decision to it.
    let starts_compensating = from != Some(SagaStatus::Compensating) && saga.status() == SagaStatus::Compensating;
    let failure_traceparent =
        if starts_compensating { cause.origin_traceparent.clone() } else { cause.failure_traceparent.clone() };
    let commands: Vec<Message> = transition.commands.into_iter().map(message).collect();
    let compensates = matches!(saga.status(), SagaStatus::Compensating | SagaStatus::Cancelled) && !commands.is_empty();
    if let Some(failure) = failure_traceparent.as_deref().filter(|_| compensates) {
        let context = RecordHeaders::context_from_traceparent(failure);
        span.add_link(context.span().span_context().clone());
        span.record("saga.compensating", true);
    }
    span.record("saga.status", saga.status().as_str());
    if let Some(active) = saga.active() {
        span.record("saga.step", active.step.as_str());
    }
    let history = TransitionRecord {
        at: now,
        input: input.to_owned(),
        message_id: cause.message_id.map(|id| *id.as_uuid()),
        from_status: from.map(|status| status.as_str().to_owned()),
        to_status: saga.status().as_str().to_owned(),
        step: saga.active().map(|active| active.step.as_str().to_owned()),
        commands: commands.iter().map(|c| c.message_type().name().to_owned()).collect(),
        ignored: transition.ignored.map(|why| why.as_str().to_owned()),
        operator: cause.operator.as_ref().map(|(name, _)| name.clone()),
        reason: cause.operator.as_ref().map(|(_, reason)| reason.clone()),
    };
    if let Some(why) = transition.ignored {
        tracing::info!(saga.input = input, ignored = why.as_str(), "input changed nothing");
    } else {
        tracing::info!(saga.input = input, saga.status = saga.status().as_str(), commands = ?history.commands, "saga moved on");
    }
    let saved = transition.ignored.is_none().then(|| StoredSaga {
        saga,
        correlation_id: cause.correlation_id,
        last_message_id: cause.message_id.unwrap_or(cause.causation_id),
        traceparent: RecordHeaders::current_traceparent(),
        failure_traceparent,
        // Written back over the version read, however many of a batch's
        // transitions it went through since.
        version: read.and_then(|stored| stored.version),
    });
    for payload in commands {
        work.send(cause.envelope(source, order, now, payload));
    }
    // One record for what the saga reports now (the entries of this
    // transition and of those before it that kept theirs back), not one per
    // entry: the order service makes one transaction of it.
    send_report(work, cause, source, order, moved.to, transition.timeline, now);
    (moved, Pending { order, saved, history })
}

/// Reports the entries a saga kept back, now due, in `work`: one record,
/// continuing the saga's lineage (`cause`). Gives back the saga without
/// them, to save.
pub fn report_kept(
    work: &mut UnitOfWork,
    stored: &StoredSaga,
    cause: &Cause,
    source: &Source,
    now: OffsetDateTime,
) -> Saga {
    let mut saga = stored.saga.clone();
    let entries = saga.take_unreported();
    send_report(work, cause, source, saga.order_id, saga.status(), entries, now);
    saga
}

/// Sends `entries` (oldest first) as one step report of the order's saga,
/// now in `status`; nothing when there are none.
fn send_report(
    work: &mut UnitOfWork,
    cause: &Cause,
    source: &Source,
    order: OrderId,
    status: SagaStatus,
    entries: Vec<StepEntry>,
    now: OffsetDateTime,
) {
    // A saga has ended once completed or cancelled (one that needs
    // attention may yet move on).
    let ended = matches!(status, SagaStatus::Completed | SagaStatus::Cancelled);
    if let Some(recorded) = SagaStepRecorded::of_entries(entries, ended) {
        work.send(cause.envelope(source, order, now, recorded.into()));
    }
}

/// The message that carries a saga's command.
fn message(command: Command) -> Message {
    match command {
        Command::ReserveInventory { lines } => ReserveInventory { lines }.into(),
        Command::CommitInventory => CommitInventory {}.into(),
        Command::ReleaseInventory => ReleaseInventory {}.into(),
        Command::AuthorizePayment { amount, card_token } => AuthorizePayment { amount, card_token }.into(),
        Command::CapturePayment { amount } => CapturePayment { amount }.into(),
        Command::VoidPayment => VoidPayment {}.into(),
        Command::ConfirmOrder { pricing } => ConfirmOrder { pricing }.into(),
        Command::CancelOrder { reason, pricing } => CancelOrder { reason, pricing }.into(),
        Command::NotifyOrderConfirmed { email, pricing } => NotifyOrderConfirmed { email, pricing }.into(),
        Command::NotifyOrderCancelled { email, reason } => NotifyOrderCancelled { email, reason }.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(from: Option<SagaStatus>, to: SagaStatus) -> Moved {
        let at = OffsetDateTime::UNIX_EPOCH;
        Moved { from, to, started_at: at, at }
    }

    #[test]
    fn a_saga_finishes_once_when_it_enters_a_final_or_stranded_state() {
        use SagaStatus::{Cancelled, Compensating, Completed, NeedsAttention, Running};
        assert_eq!(moved(Some(Running), Completed).outcome(), Some("completed"));
        assert_eq!(moved(Some(Compensating), Cancelled).outcome(), Some("compensated"));
        assert_eq!(moved(Some(Running), NeedsAttention).outcome(), Some("needs_attention"));
        assert_eq!(moved(Some(Completed), Completed).outcome(), None, "an input ignored after the end");
        assert_eq!(moved(Some(Running), Compensating).outcome(), None);
        assert_eq!(moved(None, Running).outcome(), None);
    }

    #[test]
    fn each_command_travels_as_the_message_of_its_name_with_its_fields() {
        use checkout_domain::{CardToken, Currency, EmailAddress, Money, OrderLine, OrderLines, PricedLine, Pricing};
        use checkout_domain::{Quantity, Sku};
        use checkout_messages::payloads::order::{CancellationCode, CancellationReason};

        let sku = Sku::parse("MUG").unwrap();
        let quantity = Quantity::new(2).unwrap();
        let amount = Money::new(2500, Currency::EUR).unwrap();
        let lines = OrderLines::new(vec![OrderLine { sku: sku.clone(), quantity }]).unwrap();
        let pricing =
            Pricing::new(vec![PricedLine { sku, quantity, unit_price: Money::new(1250, Currency::EUR).unwrap() }])
                .unwrap();
        let email = EmailAddress::parse("ada@example.com").unwrap();
        let card_token = CardToken::parse("tok_visa").unwrap();
        let reason = CancellationReason { code: CancellationCode::CustomerCancelled, detail: "changed my mind".into() };
        let commands = [
            Command::ReserveInventory { lines: lines.clone() },
            Command::CommitInventory,
            Command::ReleaseInventory,
            Command::AuthorizePayment { amount, card_token: card_token.clone() },
            Command::CapturePayment { amount },
            Command::VoidPayment,
            Command::ConfirmOrder { pricing: pricing.clone() },
            Command::CancelOrder { reason: reason.clone(), pricing: Some(pricing.clone()) },
            Command::NotifyOrderConfirmed { email: email.clone(), pricing: pricing.clone() },
            Command::NotifyOrderCancelled { email: email.clone(), reason: reason.clone() },
        ];
        for command in commands {
            let name = command.name();
            let sent = message(command);
            assert_eq!(sent.message_type().name(), name);
            match sent {
                Message::ReserveInventory(m) => assert_eq!(m.lines, lines),
                Message::AuthorizePayment(m) => assert_eq!((m.amount, &m.card_token), (amount, &card_token)),
                Message::CapturePayment(m) => assert_eq!(m.amount, amount),
                Message::ConfirmOrder(m) => assert_eq!(m.pricing, pricing),
                Message::CancelOrder(m) => assert_eq!((&m.reason, m.pricing.as_ref()), (&reason, Some(&pricing))),
                Message::NotifyOrderConfirmed(m) => assert_eq!((&m.email, &m.pricing), (&email, &pricing)),
                Message::NotifyOrderCancelled(m) => assert_eq!((&m.email, &m.reason), (&email, &reason)),
                Message::CommitInventory(_) | Message::ReleaseInventory(_) | Message::VoidPayment(_) => {}
                other => panic!("{name} became {other:?}"),
            }
        }
    }
}
