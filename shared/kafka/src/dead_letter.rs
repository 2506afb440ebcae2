use std::fmt;

use checkout_messages::DecodeError;
use rdkafka::Message as _;
use rdkafka::message::OwnedMessage;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{OutgoingRecord, RecordHeaders, TopicNames};

/// Headers added to a dead-lettered record, next to the original record's own
/// headers (trace context included) which are kept as they were.
#[derive(Debug)]
pub struct DeadLetterHeader;

impl DeadLetterHeader {
    pub const ORIGINAL_TOPIC: &'static str = "dlt-original-topic";
    pub const ORIGINAL_PARTITION: &'static str = "dlt-original-partition";
    pub const ORIGINAL_OFFSET: &'static str = "dlt-original-offset";
    pub const CONSUMER_GROUP: &'static str = "dlt-consumer-group";
    pub const ERROR_CLASS: &'static str = "dlt-error-class";
    pub const ERROR_MESSAGE: &'static str = "dlt-error-message";
    pub const ATTEMPTS: &'static str = "dlt-attempts";
    pub const FIRST_FAILURE_TIME: &'static str = "dlt-first-failure-time";
    pub const DEAD_LETTERED_TIME: &'static str = "dlt-dead-lettered-time";
}

/// Why a record was dead-lettered. Every class is permanent: the record would
/// fail the same way every time. Transient failures are never dead-lettered
/// (see `RetryPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Not a message envelope at all (garbage bytes, wrong spec version).
    MalformedEnvelope,
    UnknownType,
    /// A newer major version than this build reads, or an unreadable version.
    UnsupportedVersion,
    /// The envelope is fine but its payload fails validation.
    InvalidPayload,
    /// The record key is not the envelope's subject (the order id).
    KeyMismatch,
    /// A message type that does not belong on the topic it was read from.
    WrongTopic,
    /// The handler refused the message as permanently unprocessable.
    Rejected,
    /// The handler panicked; treated as permanent so the partition moves on.
    HandlerPanicked,
}

impl ErrorClass {
    pub const ALL: [Self; 8] = [
        Self::MalformedEnvelope,
        Self::UnknownType,
        Self::UnsupportedVersion,
        Self::InvalidPayload,
        Self::KeyMismatch,
        Self::WrongTopic,
        Self::Rejected,
        Self::HandlerPanicked,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MalformedEnvelope => "malformed-envelope",
            Self::UnknownType => "unknown-type",
            Self::UnsupportedVersion => "unsupported-version",
            Self::InvalidPayload => "invalid-payload",
            Self::KeyMismatch => "key-mismatch",
            Self::WrongTopic => "wrong-topic",
            Self::Rejected => "rejected",
            Self::HandlerPanicked => "handler-panicked",
        }
    }

    pub(crate) fn of_decode_error(error: &DecodeError) -> Self {
        match error {
            DecodeError::MalformedEnvelope(_)
            | DecodeError::UnsupportedSpecVersion(_)
            | DecodeError::UnsupportedContentType(_) => Self::MalformedEnvelope,
            DecodeError::UnknownType(_) => Self::UnknownType,
            DecodeError::InvalidVersion { .. } | DecodeError::UnsupportedVersion { .. } => Self::UnsupportedVersion,
            DecodeError::InvalidPayload { .. } => Self::InvalidPayload,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong with a record, for its dead-letter headers.
#[derive(Debug)]
pub(crate) struct Failure {
    pub class: ErrorClass,
    pub message: String,
    pub attempts: u32,
    pub first_failed_at: OffsetDateTime,
}

/// Longest error message kept in a header; error chains can be long.
const MAX_ERROR_MESSAGE_BYTES: usize = 2048;

/// The record to write to `original`'s dead-letter topic: same key, value and
/// headers, plus the `dlt-*` headers describing the failure.
pub(crate) fn dead_letter_record(original: &OwnedMessage, group_id: &str, failure: &Failure) -> OutgoingRecord {
    let mut headers = RecordHeaders::from_kafka(original.headers());
    let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    headers.insert(DeadLetterHeader::ORIGINAL_TOPIC, original.topic());
    headers.insert(DeadLetterHeader::ORIGINAL_PARTITION, original.partition().to_string());
    headers.insert(DeadLetterHeader::ORIGINAL_OFFSET, original.offset().to_string());
    headers.insert(DeadLetterHeader::CONSUMER_GROUP, group_id);
    headers.insert(DeadLetterHeader::ERROR_CLASS, failure.class.as_str());
    headers.insert(DeadLetterHeader::ERROR_MESSAGE, truncate(&failure.message, MAX_ERROR_MESSAGE_BYTES));
    headers.insert(DeadLetterHeader::ATTEMPTS, failure.attempts.to_string());
    headers.insert(DeadLetterHeader::FIRST_FAILURE_TIME, time(failure.first_failed_at));
    headers.insert(DeadLetterHeader::DEAD_LETTERED_TIME, time(OffsetDateTime::now_utc()));
    OutgoingRecord {
        topic: TopicNames::dead_letter_of(original.topic()),
        key: original.key().map(<[u8]>::to_vec),
        payload: original.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers,
    }
}

fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders};

    use super::*;

    #[test]
    fn a_dead_letter_keeps_the_original_record_and_describes_the_failure() {
        let original = OwnedMessage::new(
            Some(b"garbage".to_vec()),
            Some(b"order-1".to_vec()),
            "t-inventory.commands".into(),
            Timestamp::NotAvailable,
            2,
            41,
            Some(OwnedHeaders::new().insert(Header { key: "traceparent", value: Some("00-abc-def-01") })),
        );
        let failure = Failure {
            class: ErrorClass::MalformedEnvelope,
            message: "not a message envelope".into(),
            attempts: 1,
            first_failed_at: OffsetDateTime::UNIX_EPOCH,
        };
        let record = dead_letter_record(&original, "inventory", &failure);
        assert_eq!(record.topic, "t-inventory.commands.dlt");
        assert_eq!((record.key.as_deref(), record.payload.as_slice()), (Some(&b"order-1"[..]), &b"garbage"[..]));
        let header = |name| record.headers.get_str(name).unwrap();
        assert_eq!(header("traceparent"), "00-abc-def-01");
        assert_eq!(header(DeadLetterHeader::ORIGINAL_TOPIC), "t-inventory.commands");
        assert_eq!(header(DeadLetterHeader::ORIGINAL_PARTITION), "2");
        assert_eq!(header(DeadLetterHeader::ORIGINAL_OFFSET), "41");
        assert_eq!(header(DeadLetterHeader::ERROR_CLASS), "malformed-envelope");
        assert_eq!(header(DeadLetterHeader::ATTEMPTS), "1");
        assert_eq!(header(DeadLetterHeader::FIRST_FAILURE_TIME), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn long_error_messages_are_cut_on_a_character_boundary() {
        let text = "é".repeat(10);
        assert_eq!(truncate(&text, 5), "éé");
        assert_eq!(truncate("short", 100), "short");
    }
}
