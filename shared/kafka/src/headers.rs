use checkout_messages::{Envelope, Message};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use time::format_description::well_known::Rfc3339;

/// Names of the headers every record carries.
pub mod header_names {
    /// Structured CloudEvents: the record value is the whole event as JSON.
    pub const CONTENT_TYPE: &str = "content-type";
    pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json; charset=utf-8";
    // Envelope attributes, so tools can route and filter without parsing values.
    pub const ID: &str = "ce_id";
    pub const TYPE: &str = "ce_type";
    pub const SCHEMA_VERSION: &str = "ce_schemaversion";
    pub const SOURCE: &str = "ce_source";
    pub const SUBJECT: &str = "ce_subject";
    pub const TIME: &str = "ce_time";
    pub const CORRELATION_ID: &str = "ce_correlationid";
    pub const CAUSATION_ID: &str = "ce_causationid";
    // W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
}

/// The headers of one record, in order, as names and raw values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordHeaders(Vec<(String, Vec<u8>)>);

impl RecordHeaders {
    pub fn new() -> Self {
        Self::default()
    }

    /// Content type and envelope attributes for a record carrying `envelope`.
    pub fn for_envelope(envelope: &Envelope<Message>) -> Self {
        use header_names as h;
        let message_type = envelope.payload.message_type();
        let mut headers = Self::new();
        headers.insert(h::CONTENT_TYPE, h::CLOUDEVENTS_JSON);
        headers.insert(h::ID, envelope.id.to_string());
        headers.insert(h::TYPE, message_type.name());
        headers.insert(h::SCHEMA_VERSION, message_type.current_version().to_string());
        headers.insert(h::SOURCE, envelope.source.as_str());
        headers.insert(h::SUBJECT, envelope.subject.to_string());
        if let Ok(time) = envelope.time.format(&Rfc3339) {
            headers.insert(h::TIME, time);
        }
        headers.insert(h::CORRELATION_ID, envelope.correlation_id.to_string());
        headers.insert(h::CAUSATION_ID, envelope.causation_id.to_string());
        headers
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(existing, _)| *existing == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(existing, _)| existing == name).map(|(_, value)| value.as_slice())
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|value| std::str::from_utf8(value).ok())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    /// Writes `context` as W3C `traceparent`/`tracestate` (nothing if it has no span).
    pub fn inject_trace_context(&mut self, context: &opentelemetry::Context) {
        TraceContextPropagator::new().inject_context(context, self);
    }

    /// Writes the trace context of the current `tracing` span.
    pub fn inject_current_trace_context(&mut self) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        self.inject_trace_context(&tracing::Span::current().context());
    }

    /// The current span's context as a W3C `traceparent`, to store and continue later.
    pub fn current_traceparent() -> Option<String> {
        let mut headers = Self::new();
        headers.inject_current_trace_context();
        headers.get_str(header_names::TRACEPARENT).map(str::to_owned)
    }

    /// A context to continue from a stored `traceparent`.
    pub fn context_from_traceparent(traceparent: &str) -> opentelemetry::Context {
        let mut headers = Self::new();
        headers.insert(header_names::TRACEPARENT, traceparent);
        headers.trace_context()
    }

    /// The remote trace context these headers carry (empty if none).
    pub fn trace_context(&self) -> opentelemetry::Context {
        TraceContextPropagator::new().extract(self)
    }

    pub fn from_kafka<H: Headers>(headers: Option<&H>) -> Self {
        let Some(headers) = headers else { return Self::new() };
        Self(
            headers
                .iter()
                .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec).unwrap_or_default()))
                .collect(),
        )
    }

    pub(crate) fn to_kafka(&self) -> OwnedHeaders {
        self.0.iter().fold(OwnedHeaders::new_with_capacity(self.0.len()), |headers, (key, value)| {
            headers.insert(Header { key, value: Some(value) })
        })
    }
}

impl Injector for RecordHeaders {
    fn set(&mut self, key: &str, value: String) {
        self.insert(key, value);
    }
}

impl Extractor for RecordHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        self.get_str(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn inserting_a_header_twice_keeps_the_last_value() {
        let mut headers = RecordHeaders::new();
        headers.insert("a", "1");
        headers.insert("a", "2");
        assert_eq!(headers.iter().count(), 1);
        assert_eq!(headers.get_str("a"), Some("2"));
    }

    #[test]
    fn trace_context_survives_a_trip_through_headers() {
        let span = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "value")]).unwrap(),
        );
        let mut headers = RecordHeaders::new();
        headers.inject_trace_context(&opentelemetry::Context::new().with_remote_span_context(span.clone()));
        assert_eq!(
            headers.get_str(header_names::TRACEPARENT),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(headers.get_str(header_names::TRACESTATE), Some("vendor=value"));
        let extracted = headers.trace_context();
        assert_eq!(extracted.span().span_context(), &span);
    }

    #[test]
    fn headers_without_trace_context_extract_to_an_invalid_span() {
        let extracted = RecordHeaders::new().trace_context();
        assert!(!extracted.span().span_context().is_valid());
    }
}
