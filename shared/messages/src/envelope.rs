use std::fmt;
use std::str::FromStr;

use checkout_domain::OrderId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Message;

/// Identity of one message. Redeliveries of a message keep its id, which is
/// what consumers deduplicate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct MessageId(Uuid);

/// Identity of the conversation a message belongs to: one checkout. Every
/// message caused, directly or not, by the same first message shares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct CorrelationId(Uuid);

macro_rules! uuid_newtype {
    ($($name:ident),*) => {$(
        impl $name {
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )*};
}

uuid_newtype!(MessageId, CorrelationId);

/// The service that emitted a message, as a CloudEvents `source` URI reference
/// (`/checkout/<service>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source(String);

impl Source {
    /// The source of messages emitted by the named checkout service.
    pub fn service(name: &str) -> Self {
        Self(format!("/checkout/{name}"))
    }

    /// A source as read off the wire; any non-empty URI reference is accepted.
    pub(crate) fn from_wire(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message with its identity and lineage.
///
/// `subject` is the order the message is about; it is also the Kafka record
/// key, so all messages about one order stay in order on one partition.
/// `causation_id` is the id of the message that caused this one (a first
/// message is its own cause), which lets a trace or a log follow the chain.
/// `sequence`, when the source keeps a stream per order (the order service
/// does), is the message's position in that stream: a consumer that keeps a
/// copy (a read model) applies each position once and never goes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<P = Message> {
    pub id: MessageId,
    pub source: Source,
    pub subject: OrderId,
    pub time: OffsetDateTime,
    pub correlation_id: CorrelationId,
    pub causation_id: MessageId,
    pub sequence: Option<u64>,
    pub payload: P,
}

impl<P> Envelope<P> {
    /// The first message of a conversation: its own cause, and its id names the conversation.
    pub fn first(id: MessageId, source: Source, subject: OrderId, time: OffsetDateTime, payload: P) -> Self {
        Self {
            id,
            source,
            subject,
            time,
            correlation_id: CorrelationId(id.0),
            causation_id: id,
            sequence: None,
            payload,
        }
    }

    /// The same envelope at position `sequence` of its subject's stream.
    #[must_use]
    pub fn at_sequence(self, sequence: u64) -> Self {
        Self { sequence: Some(sequence), ..self }
    }

    /// A message caused by `self`: same order and conversation, caused by `self`.
    pub fn caused<Q>(&self, id: MessageId, source: Source, time: OffsetDateTime, payload: Q) -> Envelope<Q> {
        Envelope {
            id,
            source,
            subject: self.subject,
            time,
            correlation_id: self.correlation_id,
            causation_id: self.id,
            sequence: None,
            payload,
        }
    }

    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> Envelope<Q> {
        Envelope {
            id: self.id,
            source: self.source,
            subject: self.subject,
            time: self.time,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            sequence: self.sequence,
            payload: f(self.payload),
        }
    }
}

impl<P: Into<Message>> Envelope<P> {
    /// The same envelope with its payload as the catalog-wide [`Message`].
    pub fn into_message(self) -> Envelope<Message> {
        self.map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn id(n: u128) -> MessageId {
        MessageId::from_uuid(Uuid::from_u128(n))
    }

    #[test]
    fn a_first_message_is_its_own_cause_and_names_the_conversation() {
        let order = OrderId::from_uuid(Uuid::from_u128(7));
        let first = Envelope::first(id(1), Source::service("order"), order, datetime!(2026-01-01 0:00 UTC), ());
        assert_eq!(first.causation_id, id(1));
        assert_eq!(*first.correlation_id.as_uuid(), Uuid::from_u128(1));
    }

    #[test]
    fn a_caused_message_keeps_subject_and_correlation_and_points_at_its_cause() {
        let order = OrderId::from_uuid(Uuid::from_u128(7));
        let first = Envelope::first(id(1), Source::service("order"), order, datetime!(2026-01-01 0:00 UTC), ());
        let second = first.caused(id(2), Source::service("orchestrator"), datetime!(2026-01-01 0:01 UTC), ());
        let third = second.caused(id(3), Source::service("inventory"), datetime!(2026-01-01 0:02 UTC), ());
        assert_eq!((third.subject, third.correlation_id, third.causation_id), (order, first.correlation_id, id(2)));
        assert_eq!(Source::service("inventory").as_str(), "/checkout/inventory");
    }
}
