//! The catalog: every message type with its topic and current schema version.
//!
//! One table drives the `Message` enum, the `MessageType` descriptors and the
//! codec's dispatch, so adding a message is one line here plus its payload.

#![allow(clippy::wildcard_imports, reason = "the catalog names every payload type")]

use schemars::{Schema, SchemaGenerator};
use serde_json::value::RawValue;

use crate::payloads::inventory::*;
use crate::payloads::notification::*;
use crate::payloads::order::*;
use crate::payloads::payment::*;
use crate::payloads::saga::*;
use crate::{SchemaVersion, Topic};

macro_rules! message_catalog {
    ($( $name:ident => $topic:ident, version($major:literal, $minor:literal); )*) => {
        /// Any message of the catalog.
        #[derive(Clone, Debug, PartialEq, Eq)]
        #[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
        pub enum Message {
            $( $name($name), )*
        }

        /// The type of a message, as named on the wire (CloudEvents `type`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum MessageType {
            $( $name, )*
        }

        impl MessageType {
            pub const ALL: &'static [Self] = &[ $( Self::$name, )* ];

            pub const fn name(self) -> &'static str {
                match self { $( Self::$name => stringify!($name), )* }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( stringify!($name) => Some(Self::$name), )*
                    _ => None,
                }
            }

            /// The version this build writes, and the newest it reads.
            pub const fn current_version(self) -> SchemaVersion {
                match self { $( Self::$name => SchemaVersion::new($major, $minor), )* }
            }

            /// The topic every message of this type travels on.
            pub const fn topic(self) -> Topic {
                match self { $( Self::$name => Topic::$topic, )* }
            }

            pub(crate) fn current_data_schema(self, generator: &mut SchemaGenerator) -> Schema {
                match self { $( Self::$name => generator.root_schema_for::<$name>(), )* }
            }
        }

        impl Message {
            pub const fn message_type(&self) -> MessageType {
                match self { $( Self::$name(_) => MessageType::$name, )* }
            }

            pub(crate) fn to_data(&self) -> serde_json::Result<Box<RawValue>> {
                match self { $( Self::$name(payload) => serde_json::value::to_raw_value(payload), )* }
            }

            /// Decodes `data` written at the current major version of `message_type`.
            pub(crate) fn from_current_data(message_type: MessageType, data: &RawValue) -> serde_json::Result<Self> {
                match message_type {
                    $( MessageType::$name => serde_json::from_str(data.get()).map(Self::$name), )*
                }
            }
        }

        $(
            impl From<$name> for Message {
                fn from(payload: $name) -> Self {
                    Self::$name(payload)
                }
            }
        )*
    };
}

message_catalog! {
    // order
    OrderPlaced => OrderEvents, version(1, 0);
    ConfirmOrder => OrderCommands, version(1, 0);
    OrderConfirmed => OrderEvents, version(1, 0);
    CancelOrder => OrderCommands, version(1, 2);
    OrderCancelled => OrderEvents, version(1, 2);
    OrderCancellationRequested => OrderEvents, version(1, 0);
    // inventory
    ReserveInventory => InventoryCommands, version(1, 0);
    InventoryReserved => InventoryEvents, version(1, 0);
    InventoryReservationRejected => InventoryEvents, version(1, 0);
    ReleaseInventory => InventoryCommands, version(1, 0);
    InventoryReleased => InventoryEvents, version(1, 0);
    CommitInventory => InventoryCommands, version(1, 0);
    InventoryCommitted => InventoryEvents, version(1, 0);
    InventoryCommitRejected => InventoryEvents, version(1, 0);
    InventoryReservationExpired => InventoryEvents, version(1, 0);
    // payment
    AuthorizePayment => PaymentCommands, version(2, 0);
    PaymentAuthorized => PaymentEvents, version(1, 0);
    PaymentDeclined => PaymentEvents, version(1, 0);
    CapturePayment => PaymentCommands, version(1, 0);
    PaymentCaptured => PaymentEvents, version(1, 0);
    VoidPayment => PaymentCommands, version(1, 0);
    PaymentVoided => PaymentEvents, version(1, 0);
    RefundPayment => PaymentCommands, version(1, 0);
    PaymentRefunded => PaymentEvents, version(1, 0);
    // notification
    NotifyOrderConfirmed => NotificationCommands, version(1, 0);
    NotifyOrderCancelled => NotificationCommands, version(1, 2);
    CustomerNotified => NotificationEvents, version(1, 0);
    // saga progress
    SagaStepRecorded => OrchestratorEvents, version(1, 2);
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicKind;

    #[test]
    fn commands_are_imperative_on_command_topics_and_events_past_tense_on_event_topics() {
        const COMMAND_VERBS: [&str; 10] =
            ["Reserve", "Release", "Commit", "Authorize", "Capture", "Void", "Refund", "Confirm", "Cancel", "Notify"];
        for &message_type in MessageType::ALL {
            let name = message_type.name();
            let is_command = COMMAND_VERBS.iter().any(|verb| name.starts_with(verb));
            let expected = if is_command { TopicKind::Commands } else { TopicKind::Events };
            assert_eq!(message_type.topic().kind(), expected, "{name} is on {}", message_type.topic());
            assert!(is_command || name.ends_with("ed"), "event {name} is not named in the past tense");
        }
    }

    #[test]
    fn every_type_name_resolves_to_itself() {
        for &message_type in MessageType::ALL {
            assert_eq!(MessageType::from_name(message_type.name()), Some(message_type));
        }
        assert_eq!(MessageType::from_name("orderplaced"), None);
    }
}
