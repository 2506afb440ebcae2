use checkout_kafka::RecordHeaders;
use checkout_messages::{EncodeError, Envelope, Message, encode};
use sqlx::PgConnection;
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("outbox write failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// Adds `envelope` to the outbox inside the caller's transaction: it is
/// published if and only if that transaction commits. The trace context of the
/// current span is stored with it, so publishing continues the same trace.
pub async fn enqueue(conn: &mut PgConnection, envelope: &Envelope<Message>) -> Result<(), OutboxError> {
    enqueue_in_trace(conn, envelope, &tracing::Span::current().context()).await
}

/// [`enqueue`] with the trace context to continue given explicitly.
pub(crate) async fn enqueue_in_trace(
    conn: &mut PgConnection,
    envelope: &Envelope<Message>,
    trace: &opentelemetry::Context,
) -> Result<(), OutboxError> {
    let mut headers = RecordHeaders::for_envelope(envelope);
    headers.inject_trace_context(trace);
    let message_type = envelope.payload.message_type();
    sqlx::query!(
        "INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers) VALUES ($1, $2, $3, $4, $5)",
        envelope.id.as_uuid(),
        message_type.topic().name(),
        envelope.subject.to_string(),
        encode(envelope)?,
        headers_to_json(&headers),
    )
    .execute(conn)
    .await?;
    tracing::debug!(message.id = %envelope.id, message.type = %message_type, order.id = %envelope.subject,
        "message added to outbox");
    Ok(())
}

/// Header values are text in every record this system writes.
pub(crate) fn headers_to_json(headers: &RecordHeaders) -> serde_json::Value {
    let object: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| (name.to_owned(), serde_json::Value::String(String::from_utf8_lossy(value).into_owned())))
        .collect();
    serde_json::Value::Object(object)
}

pub(crate) fn headers_from_json(json: &serde_json::Value) -> RecordHeaders {
    let pairs = json
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| value.as_str().map(|text| (name.clone(), text.as_bytes().to_vec())));
    RecordHeaders::from_pairs(pairs)
}
