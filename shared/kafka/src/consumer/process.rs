//! Processing one record: decode and check it, run the handler, retry
//! transient failures until they clear, dead-letter what cannot be processed.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use checkout_messages::decode;
use futures::FutureExt;
use rdkafka::Message as _;
use rdkafka::message::OwnedMessage;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{Handler, HandlerError, Incoming, RecordPosition, Shared};
use crate::RecordHeaders;
use crate::dead_letter::{ErrorClass, Failure, dead_letter_record};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The record is finished with (handled or dead-lettered): store its offset.
    Done,
    /// Shutdown or revocation interrupted the record: leave it for redelivery.
    Abandoned,
}

pub(crate) async fn process_record<H: Handler>(
    shared: &Shared<H>,
    record: &OwnedMessage,
    stop: &CancellationToken,
) -> Outcome {
    let (span, headers) = record_span(shared, record);
    async {
        match check(shared, record, headers) {
            Ok(incoming) => handle(shared, record, incoming, stop).await,
            Err(failure) => dead_letter(shared, record, failure, stop).await,
        }
    }
    .instrument(span)
    .await
}

/// Processes a partition's ready records: one on its own, several as a batch.
pub(crate) async fn process_records<H: Handler>(
    shared: &Shared<H>,
    mut records: Vec<OwnedMessage>,
    stop: &CancellationToken,
) -> Vec<(OwnedMessage, Outcome)> {
    if records.len() == 1
        && let Some(record) = records.pop()
    {
        let outcome = AssertUnwindSafe(process_record(shared, &record, stop)).catch_unwind().await;
        return vec![(record, outcome.unwrap_or(Outcome::Abandoned))];
    }
    // The batch catches its handler's panics itself.
    process_batch(shared, records, stop).await
}

/// Processes records (in the order given) with one call
/// of [`Handler::handle_batch`]. If that fails, nothing of it is durable and
/// each record is processed on its own as [`process_record`] would, so a
/// transient failure is retried and a bad record dead-lettered alone.
pub(crate) async fn process_batch<H: Handler>(
    shared: &Shared<H>,
    records: Vec<OwnedMessage>,
    stop: &CancellationToken,
) -> Vec<(OwnedMessage, Outcome)> {
    let (mut done, checked) = check_all(shared, records, stop).await;
    match handle_together(shared, checked).await {
        Ok(handled) => done.extend(handled),
        Err(checked) => done.extend(one_by_one(shared, checked, stop).await),
    }
    done
}

/// A record that decoded and belongs where it was found, ready for its handler.
pub(crate) struct Checked {
    record: OwnedMessage,
    span: tracing::Span,
    incoming: Incoming,
}

/// Checks each record; dead-letters (and so finishes) those that cannot be
/// handled, and gives back the others.
pub(crate) async fn check_all<H>(
    shared: &Shared<H>,
    records: Vec<OwnedMessage>,
    stop: &CancellationToken,
) -> (Vec<(OwnedMessage, Outcome)>, Vec<Checked>) {
    let (mut done, mut checked) = (Vec::new(), Vec::with_capacity(records.len()));
    for record in records {
        let (span, headers) = record_span(shared, &record);
        match span.in_scope(|| check(shared, &record, headers)) {
            Ok(incoming) => checked.push(Checked { record, span, incoming }),
            Err(failure) => {
                let outcome = dead_letter(shared, &record, failure, stop).instrument(span).await;
                done.push((record, outcome));
            }
        }
    }
    (done, checked)
}

/// Hands the records to one [`Handler::handle_batch`] call: every one of
/// them handled, in the order given; or, if the call failed, all of them
/// back, nothing of the call durable.
pub(crate) async fn handle_together<H: Handler>(
    shared: &Shared<H>,
    checked: Vec<Checked>,
) -> Result<Vec<(OwnedMessage, Outcome)>, Vec<Checked>> {
    if checked.is_empty() {
        return Ok(Vec::new());
    }
    let batch_span = tracing::info_span!("kafka.process_batch", messaging.batch.message_count = checked.len());
    for entry in &checked {
        batch_span.follows_from(&entry.span);
    }
    let (records, incoming): (Vec<(OwnedMessage, tracing::Span)>, Vec<Incoming>) =
        checked.into_iter().map(|entry| ((entry.record, entry.span), entry.incoming)).unzip();
    let started = Instant::now();
    count_call(shared);
    let result = AssertUnwindSafe(shared.handler.handle_batch(&incoming)).catch_unwind().instrument(batch_span).await;
    if matches!(result, Ok(Ok(()))) {
        let elapsed = started.elapsed().as_secs_f64();
        let mut done = Vec::with_capacity(records.len());
        for ((record, _), message) in records.into_iter().zip(incoming) {
            metrics::histogram!("checkout_consumer_handler_duration_seconds",
                "group" => shared.settings.group_id.clone(), "type" => message.envelope.payload.message_type().name())
            .record(elapsed);
            count(shared, &record, "handled");
            done.push((record, Outcome::Done));
        }
        return Ok(done);
    }
    if let Ok(Err(error)) = result {
        tracing::debug!(%error, "batch failed; handling its records one by one");
    } else {
        tracing::warn!("batch handler panicked; handling its records one by one");
    }
    Err(records
        .into_iter()
        .zip(incoming)
        .map(|((record, span), incoming)| Checked { record, span, incoming })
        .collect())
}

/// Handles each record on its own, in order, as [`process_record`] would.
pub(crate) async fn one_by_one<H: Handler>(
    shared: &Shared<H>,
    checked: Vec<Checked>,
    stop: &CancellationToken,
) -> Vec<(OwnedMessage, Outcome)> {
    let mut done = Vec::with_capacity(checked.len());
    for Checked { record, span, incoming } in checked {
        let outcome = handle(shared, &record, incoming, stop).instrument(span).await;
        done.push((record, outcome));
    }
    done
}

/// Counts a call of the handler (a batch is one call, a retry another):
/// with `checkout_consumer_records_total`, how many records a call handles.
fn count_call<H>(shared: &Shared<H>) {
    metrics::counter!("checkout_consumer_handler_calls_total", "group" => shared.settings.group_id.clone())
        .increment(1);
}

/// The span of one record, a child of the context the record carries (so
/// the record's processing continues the producer's trace), and its headers.
fn record_span<H>(shared: &Shared<H>, record: &OwnedMessage) -> (tracing::Span, RecordHeaders) {
    let headers = RecordHeaders::from_kafka(record.headers());
    let span = tracing::info_span!(
        "kafka.process",
        otel.name = %format!("process {}", record.topic()),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = record.topic(),
        messaging.destination.partition.id = record.partition(),
        messaging.kafka.offset = record.offset(),
        messaging.consumer.group.name = %shared.settings.group_id,
        messaging.message.id = Empty,
        message.type = Empty,
        message.schema_version = Empty,
        order.id = Empty,
        correlation.id = Empty,
        causation.id = Empty,
        error.type = Empty,
    );
    // Continue the producer's trace: this span is a child of the context the
    // record carries.
    let _ = span.set_parent(headers.trace_context());
    (span, headers)
}

/// Decodes the record and checks it belongs where it was found, recording
/// what it is on the current span; a failure is for the dead-letter topic.
fn check<H>(shared: &Shared<H>, record: &OwnedMessage, headers: RecordHeaders) -> Result<Incoming, Failure> {
    let permanent = |class: ErrorClass, message: String| Failure {
        class,
        message,
        attempts: 1,
        first_failed_at: OffsetDateTime::now_utc(),
    };
    let decoded = decode(record.payload().unwrap_or_default())
        .map_err(|error| permanent(ErrorClass::of_decode_error(&error), error.to_string()))?;
    let envelope = &decoded.envelope;
    let message_type = envelope.payload.message_type();
    let span = tracing::Span::current();
    span.record("messaging.message.id", tracing::field::display(envelope.id));
    span.record("message.type", message_type.name());
    span.record("message.schema_version", tracing::field::display(decoded.wire_version));
    span.record("order.id", tracing::field::display(envelope.subject));
    span.record("correlation.id", tracing::field::display(envelope.correlation_id));
    span.record("causation.id", tracing::field::display(envelope.causation_id));

    let subject = envelope.subject.to_string();
    if record.key() != Some(subject.as_bytes()) {
        let key = record.key().map(String::from_utf8_lossy);
        let message = format!("record key {key:?} is not the envelope subject {subject}");
        return Err(permanent(ErrorClass::KeyMismatch, message));
    }
    if shared.topics.logical(record.topic()) != Some(message_type.topic()) {
        let message = format!("{message_type} belongs on {}, not on {}", message_type.topic(), record.topic());
        return Err(permanent(ErrorClass::WrongTopic, message));
    }
    Ok(Incoming {
        envelope: decoded.envelope,
        wire_version: decoded.wire_version,
        position: RecordPosition {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
        },
        headers,
        attempt: 1,
        span,
    })
}

/// Runs the handler until it succeeds (retrying transient failures) or
/// fails for good (then dead-letters the record).
async fn handle<H: Handler>(
    shared: &Shared<H>,
    record: &OwnedMessage,
    mut incoming: Incoming,
    stop: &CancellationToken,
) -> Outcome {
    let first_seen = OffsetDateTime::now_utc();
    let message_type = incoming.envelope.payload.message_type();
    // Present while this record waits out a transient failure (readiness reports it).
    let mut waiting: Option<super::Waiting> = None;
    let handler_duration = metrics::histogram!("checkout_consumer_handler_duration_seconds",
        "group" => shared.settings.group_id.clone(), "type" => message_type.name());
    let failure = loop {
        let started = Instant::now();
        count_call(shared);
        let result = AssertUnwindSafe(shared.handler.handle(&incoming)).catch_unwind().await;
        handler_duration.record(started.elapsed().as_secs_f64());
        let (class, message) = match result {
            Ok(Ok(())) => {
                tracing::debug!(
                    attempt = incoming.attempt,
                    handled_in_ms = i64::try_from((OffsetDateTime::now_utc() - first_seen).whole_milliseconds()).ok(),
                    record_age_ms = record_age_ms(record),
                    "message handled"
                );
                count(shared, record, "handled");
                return Outcome::Done;
            }
            Ok(Err(HandlerError::Permanent(error))) => (ErrorClass::Rejected, error_chain(&*error)),
            Err(panic) => (ErrorClass::HandlerPanicked, panic_message(&*panic)),
            Ok(Err(HandlerError::Transient { waits_on, error })) => {
                let message = error_chain(&*error);
                let wait = shared.settings.retry.backoff(incoming.attempt);
                waiting.get_or_insert_with(|| shared.status.start_waiting()).report(&message);
                tracing::warn!(attempt = incoming.attempt, retry_in_ms = duration_ms(wait), error = %message,
                    "transient failure, will retry until it clears");
                metrics::counter!("checkout_consumer_retries_total", "group" => shared.settings.group_id.clone(),
                    "topic" => record.topic().to_owned(), "class" => waits_on.as_str())
                .increment(1);
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return Outcome::Abandoned,
                    () = tokio::time::sleep(wait) => {}
                }
                incoming.attempt += 1;
                continue;
            }
        };
        break Failure { class, message, attempts: incoming.attempt, first_failed_at: first_seen };
    };
    dead_letter(shared, record, failure, stop).await
}

/// Writes the record to its dead-letter topic, retrying until the broker has
/// it: a record is never dropped, so a partition waits rather than lose one.
async fn dead_letter<H>(
    shared: &Shared<H>,
    record: &OwnedMessage,
    failure: Failure,
    stop: &CancellationToken,
) -> Outcome {
    let span = tracing::Span::current();
    span.record("otel.status_code", "ERROR");
    span.record("error.type", failure.class.as_str());
    tracing::error!(error.class = %failure.class, error.message = %failure.message, attempts = failure.attempts,
        "message dead-lettered");
    let dead_letter = dead_letter_record(record, &shared.settings.group_id, &failure);
    let mut wait = Duration::from_millis(100);
    loop {
        match shared.publisher.publish(&dead_letter).await {
            Ok(_) => {
                metrics::counter!("checkout_consumer_dead_lettered_total",
                    "group" => shared.settings.group_id.clone(), "topic" => record.topic().to_owned(),
                    "class" => failure.class.as_str())
                .increment(1);
                count(shared, record, "dead_lettered");
                return Outcome::Done;
            }
            Err(error) => {
                tracing::error!(%error, dead_letter.topic = %dead_letter.topic, retry_in_ms = duration_ms(wait),
                    "could not write dead letter; the partition waits");
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return Outcome::Abandoned,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn count<H>(shared: &Shared<H>, record: &OwnedMessage, outcome: &'static str) {
    metrics::counter!("checkout_consumer_records_total",
        "group" => shared.settings.group_id.clone(), "topic" => record.topic().to_owned(), "outcome" => outcome)
    .increment(1);
}

/// An error and its sources, `outer: inner: innermost`.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    format!("handler panicked: {detail}")
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the producer created the record: how long it waited in
/// the broker, the fetch and this consumer's queues, plus its handling.
fn record_age_ms(record: &OwnedMessage) -> Option<i64> {
    let created = record.timestamp().to_millis()?;
    let now = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).ok()?;
    Some(now - created)
}
