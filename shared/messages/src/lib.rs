//! The contracts between the checkout services: every command and event, the
//! envelope that carries them, their topics, and the codec that turns them
//! into bytes and back.
//!
//! # Wire format
//! Each Kafka record value is a CloudEvents 1.0 event in structured JSON mode:
//! `id`, `source`, `type`, `time`, `subject` (the order id, also the record
//! key), the extensions `schemaversion`, `correlationid` and `causationid`, and
//! the payload under `data`.
//!
//! # Versioning
//! Every message type has a `MAJOR.MINOR` schema version. Minor versions only
//! add optional fields, so readers ignore fields they do not know. A record with
//! an older major version is upcast to the current one when decoded; a newer
//! major version is never guessed at: decoding fails with
//! [`DecodeError::UnsupportedVersion`] and the consumer dead-letters it.
//!
//! This crate is pure: ids and timestamps are passed in, never generated here.

mod catalog;
mod codec;
mod envelope;
pub mod payloads;
mod schema;
mod topics;
mod upcast;
mod version;

pub use catalog::{Message, MessageType};
pub use codec::{DecodeError, Decoded, EncodeError, decode, encode};
pub use envelope::{CorrelationId, Envelope, MessageId, Source};
pub use schema::{data_schema, envelope_schema, legacy_data_schemas};
pub use topics::{Topic, TopicKind};
pub use version::{SchemaVersion, SchemaVersionError};
