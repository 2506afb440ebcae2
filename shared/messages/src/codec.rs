//! Bytes to envelopes and back: CloudEvents 1.0 structured JSON.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use checkout_domain::OrderId;

use crate::envelope::Source;
use crate::upcast::{UpcastError, upcast};
use crate::{CorrelationId, Envelope, Message, MessageId, MessageType, SchemaVersion, SchemaVersionError};

const SPEC_VERSION: &str = "1.0";
const CONTENT_TYPE: &str = "application/json";

#[derive(Serialize)]
struct WireOut<'a> {
    specversion: &'static str,
    id: MessageId,
    source: &'a str,
    #[serde(rename = "type")]
    message_type: &'static str,
    schemaversion: String,
    subject: OrderId,
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    correlationid: CorrelationId,
    causationid: MessageId,
    #[serde(skip_serializing_if = "Option::is_none")]
    ordersequence: Option<u64>,
    datacontenttype: &'static str,
    data: Box<RawValue>,
}

#[derive(Deserialize)]
struct WireIn<'a> {
    specversion: String,
    id: MessageId,
    source: String,
    #[serde(rename = "type")]
    message_type: String,
    schemaversion: String,
    subject: OrderId,
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    correlationid: CorrelationId,
    causationid: MessageId,
    #[serde(default)]
    ordersequence: Option<u64>,
    datacontenttype: Option<String>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// A decoded message and the schema version it was written with (older
/// versions have already been upcast to the current one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub envelope: Envelope<Message>,
    pub wire_version: SchemaVersion,
}

#[derive(Debug, thiserror::Error)]
#[error("message could not be encoded: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// Why bytes are not a message this build can process. Every variant is
/// permanent: decoding the same bytes again fails the same way.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a message envelope: {0}")]
    MalformedEnvelope(#[source] serde_json::Error),
    #[error("unsupported CloudEvents specversion {0:?}, expected \"1.0\"")]
    UnsupportedSpecVersion(String),
    #[error("unsupported datacontenttype {0:?}, expected \"application/json\"")]
    UnsupportedContentType(String),
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("{message_type}: {source}")]
    InvalidVersion {
        message_type: MessageType,
        #[source]
        source: SchemaVersionError,
    },
    #[error(
        "{message_type} version {version} is not supported: this reader handles {supported} and upcasts older majors it knows"
    )]
    UnsupportedVersion { message_type: MessageType, version: SchemaVersion, supported: SchemaVersion },
    #[error("{message_type} {version} payload is invalid: {detail}")]
    InvalidPayload { message_type: MessageType, version: SchemaVersion, detail: String },
}

impl DecodeError {
    /// A short stable name for the kind of failure, for dead-letter headers and metrics.
    pub const fn class(&self) -> &'static str {
        match self {
            Self::MalformedEnvelope(_) | Self::UnsupportedSpecVersion(_) | Self::UnsupportedContentType(_) => {
                "malformed-envelope"
            }
            Self::UnknownType(_) => "unknown-type",
            Self::InvalidVersion { .. } | Self::UnsupportedVersion { .. } => "unsupported-version",
            Self::InvalidPayload { .. } => "invalid-payload",
        }
    }
}

/// Encodes an envelope at its type's current schema version.
pub fn encode(envelope: &Envelope<Message>) -> Result<Vec<u8>, EncodeError> {
    let message_type = envelope.payload.message_type();
    let wire = WireOut {
        specversion: SPEC_VERSION,
        id: envelope.id,
        source: envelope.source.as_str(),
        message_type: message_type.name(),
        schemaversion: message_type.current_version().to_string(),
        subject: envelope.subject,
        time: envelope.time,
        correlationid: envelope.correlation_id,
        causationid: envelope.causation_id,
        ordersequence: envelope.sequence,
        datacontenttype: CONTENT_TYPE,
        data: envelope.payload.to_data()?,
    };
    Ok(serde_json::to_vec(&wire)?)
}

/// Decodes bytes into a current-version envelope, upcasting older versions.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let wire: WireIn<'_> = serde_json::from_slice(bytes).map_err(DecodeError::MalformedEnvelope)?;
    if wire.specversion != SPEC_VERSION {
        return Err(DecodeError::UnsupportedSpecVersion(wire.specversion));
    }
    if let Some(content_type) = wire.datacontenttype.filter(|ct| !is_json(ct)) {
        return Err(DecodeError::UnsupportedContentType(content_type));
    }
    let message_type = MessageType::from_name(&wire.message_type).ok_or(DecodeError::UnknownType(wire.message_type))?;
    let version: SchemaVersion =
        wire.schemaversion.parse().map_err(|source| DecodeError::InvalidVersion { message_type, source })?;
    let supported = message_type.current_version();

    let invalid = |detail: String| DecodeError::InvalidPayload { message_type, version, detail };
    let payload = match version.major.cmp(&supported.major) {
        Ordering::Equal => Message::from_current_data(message_type, wire.data).map_err(|e| invalid(e.to_string()))?,
        Ordering::Less => match upcast(message_type, version.major, wire.data) {
            Some(Ok(payload)) => payload,
            Some(Err(UpcastError::Json(e))) => return Err(invalid(e.to_string())),
            Some(Err(UpcastError::Invalid(detail))) => return Err(invalid(detail)),
            None => return Err(DecodeError::UnsupportedVersion { message_type, version, supported }),
        },
        Ordering::Greater => return Err(DecodeError::UnsupportedVersion { message_type, version, supported }),
    };

    let envelope = Envelope {
        id: wire.id,
        source: Source::from_wire(wire.source),
        subject: wire.subject,
        time: wire.time,
        correlation_id: wire.correlationid,
        causation_id: wire.causationid,
        sequence: wire.ordersequence,
        payload,
    };
    Ok(Decoded { envelope, wire_version: version })
}

/// `application/json`, optionally with parameters such as a charset.
fn is_json(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|media| media.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACED: &str = r#"{"specversion":"1.0","id":"0190d5c4-0000-7000-8000-000000000001","source":"/checkout/order",
        "type":"OrderPlaced","schemaversion":"1.0","subject":"0190d5c4-0000-7000-8000-0000000000aa",
        "time":"2026-11-23T10:00:00Z","correlationid":"0190d5c4-0000-7000-8000-000000000001",
        "causationid":"0190d5c4-0000-7000-8000-000000000001","datacontenttype":"application/json",
        "data":{"customer_id":"c-1","email":"ada@example.com","lines":[{"sku":"MUG","quantity":1}],"card_token":"tok_visa"}}"#;

    fn with(field: &str, value: &str) -> Vec<u8> {
        let mut json: serde_json::Value = serde_json::from_str(PLACED).unwrap();
        json[field] = serde_json::from_str(value).unwrap();
        serde_json::to_vec(&json).unwrap()
    }

    #[test]
    fn a_well_formed_envelope_decodes() {
        let decoded = decode(PLACED.as_bytes()).unwrap();
        assert_eq!(decoded.envelope.payload.message_type(), MessageType::OrderPlaced);
        assert_eq!(decoded.wire_version, SchemaVersion::new(1, 0));
    }

    #[test]
    fn each_failure_has_its_class() {
        let cases = [
            (b"\xff\x00garbage".to_vec(), "malformed-envelope"),
            (with("specversion", r#""0.3""#), "malformed-envelope"),
            (with("datacontenttype", r#""application/xml""#), "malformed-envelope"),
            (with("subject", r#""not-a-uuid""#), "malformed-envelope"),
            (with("type", r#""OrderTeleported""#), "unknown-type"),
            (with("schemaversion", r#""2.0""#), "unsupported-version"),
            (with("schemaversion", r#""0.9""#), "unsupported-version"),
            (with("schemaversion", r#""one""#), "unsupported-version"),
            (with("data", r#"{"customer_id":"c-1"}"#), "invalid-payload"),
            (
                with(
                    "data",
                    r#"{"customer_id":"c-1","email":"nope","lines":[{"sku":"MUG","quantity":1}],"card_token":"t"}"#,
                ),
                "invalid-payload",
            ),
        ];
        for (bytes, class) in cases {
            let err = decode(&bytes).unwrap_err();
            assert_eq!(err.class(), class, "{err}");
        }
    }

    #[test]
    fn a_newer_minor_version_with_extra_fields_is_read() {
        let bytes = with("schemaversion", r#""1.7""#);
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        json["data"]["gift_wrap"] = serde_json::Value::Bool(true);
        let decoded = decode(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(decoded.wire_version, SchemaVersion::new(1, 7));
    }

    #[test]
    fn content_type_parameters_are_allowed() {
        assert!(decode(&with("datacontenttype", r#""application/json; charset=utf-8""#)).is_ok());
    }
}
