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
    /// An autocommit unit of work used as if it had a transaction.
    #[error("autocommit unit of work: {0}")]
    Autocommit(&'static str),
}

/// Adds `envelope` to the outbox inside the caller's transaction: it is
/// published if and only if that transaction commits. The trace context of the
/// current span is stored with it, so publishing continues the same trace.
pub async fn enqueue(conn: &mut PgConnection, envelope: &Envelope<Message>) -> Result<(), OutboxError> {
    insert(conn, &OutboxRows::encode(&[(envelope.clone(), tracing::Span::current().context())])?).await
}

/// Messages encoded as the columns of `outbox_messages`, in the order they
/// were sent, for one `INSERT … SELECT FROM UNNEST(…) WITH ORDINALITY`. A
/// service may write them in its own state change's statement, as a
/// data-modifying CTE, instead of a statement of their own (see
/// [`UnitOfWork::take_outbox`](crate::UnitOfWork::take_outbox)).
#[derive(Clone, Debug, Default)]
pub struct OutboxRows {
    pub ids: Vec<uuid::Uuid>,
    pub topics: Vec<&'static str>,
    pub keys: Vec<String>,
    pub payloads: Vec<Vec<u8>>,
    pub headers: Vec<serde_json::Value>,
}

impl OutboxRows {
    /// Encodes `outgoing`, each with the trace context its record continues.
    pub(crate) fn encode(outgoing: &[(Envelope<Message>, opentelemetry::Context)]) -> Result<Self, EncodeError> {
        let mut rows = Self::default();
        for (envelope, trace) in outgoing {
            let mut headers = RecordHeaders::for_envelope(envelope);
            headers.inject_trace_context(trace);
            rows.ids.push(*envelope.id.as_uuid());
            rows.topics.push(envelope.payload.message_type().topic().name());
            rows.keys.push(envelope.subject.to_string());
            rows.payloads.push(encode(envelope)?);
            rows.headers.push(headers_to_json(&headers));
            tracing::debug!(message.id = %envelope.id, message.type = %envelope.payload.message_type(),
                order.id = %envelope.subject, "message added to outbox");
        }
        Ok(rows)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds `other`'s rows after these.
    pub(crate) fn append(&mut self, other: Self) {
        self.ids.extend(other.ids);
        self.topics.extend(other.topics);
        self.keys.extend(other.keys);
        self.payloads.extend(other.payloads);
        self.headers.extend(other.headers);
    }
}

/// Inserts `rows` in one statement (one round trip and one trigger however
/// many there are), in their order.
pub(crate) async fn insert(conn: &mut PgConnection, rows: &OutboxRows) -> Result<(), OutboxError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers)
         SELECT id, topic, key, payload, headers
           FROM UNNEST($1::UUID[], $2::TEXT[], $3::TEXT[], $4::BYTEA[], $5::JSONB[])
                WITH ORDINALITY AS m(id, topic, key, payload, headers, n)
          ORDER BY n",
        &rows.ids,
        &rows.topics as &[&str],
        &rows.keys,
        &rows.payloads,
        &rows.headers,
    )
    .execute(conn)
    .await?;
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
