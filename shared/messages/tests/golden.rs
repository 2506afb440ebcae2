//! Golden files: one encoded sample per message type and version under
//! `golden/`. A change to a schema changes an encoding, which fails here
//! until the files are regenerated (`UPDATE_GOLDEN=1`) and the diff reviewed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "common/files.rs"]
mod files;
#[path = "common/samples.rs"]
mod samples;

use std::fs;

use checkout_domain::{CardToken, Currency, Money};
use checkout_messages::payloads::payment::AuthorizePayment;
use checkout_messages::{Message, MessageType, SchemaVersion, decode, encode};
use files::{crate_dir, updating};
use samples::{sample_envelope, sample_payload};

fn golden_path(message_type: MessageType, major: u16) -> std::path::PathBuf {
    crate_dir().join("golden").join(format!("{message_type}.v{major}.json"))
}

fn pretty(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

#[test]
fn every_message_type_encodes_exactly_as_its_golden_file() {
    for &message_type in MessageType::ALL {
        let envelope = sample_envelope(sample_payload(message_type));
        let encoded = pretty(&encode(&envelope).unwrap());
        let path = golden_path(message_type, message_type.current_version().major);
        if updating() {
            fs::write(&path, &encoded).unwrap();
            continue;
        }
        let golden = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1 to create it", path.display()));
        assert_eq!(
            encoded,
            golden,
            "{message_type} no longer encodes as {}: if the change is intended, bump its schema version \
             when it breaks readers, then run with UPDATE_GOLDEN=1 and review the diff",
            path.display()
        );
    }
}

#[test]
fn every_golden_file_decodes_to_its_sample() {
    for &message_type in MessageType::ALL {
        let version = message_type.current_version();
        let bytes = fs::read(golden_path(message_type, version.major)).unwrap();
        let decoded = decode(&bytes).unwrap_or_else(|e| panic!("{message_type}: {e}"));
        assert_eq!(decoded.envelope, sample_envelope(sample_payload(message_type)));
        assert_eq!(decoded.wire_version, version);
    }
}

#[test]
fn authorize_payment_version_1_is_upcast_to_an_amount_in_euros() {
    let bytes = fs::read(golden_path(MessageType::AuthorizePayment, 1)).unwrap();
    let decoded = decode(&bytes).unwrap();
    assert_eq!(decoded.wire_version, SchemaVersion::new(1, 0));
    let expected = AuthorizePayment {
        amount: Money::new(4499, Currency::EUR).unwrap(),
        card_token: CardToken::parse("tok_visa").unwrap(),
    };
    assert_eq!(decoded.envelope.payload, Message::AuthorizePayment(expected));
    // Re-encoding writes the current version, never the old one.
    let reencoded: serde_json::Value = serde_json::from_slice(&encode(&decoded.envelope).unwrap()).unwrap();
    assert_eq!(reencoded["schemaversion"], "2.0");
}

#[test]
fn no_golden_file_is_left_without_a_message_type() {
    for entry in fs::read_dir(crate_dir().join("golden")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let (type_name, major) = name.strip_suffix(".json").and_then(|n| n.split_once(".v")).unwrap();
        let message_type = MessageType::from_name(type_name).unwrap_or_else(|| panic!("{name}: unknown type"));
        let major: u16 = major.parse().unwrap();
        let current = message_type.current_version().major;
        let legacy = checkout_messages::legacy_data_schemas().iter().any(|(t, m, _)| *t == message_type && *m == major);
        assert!(major == current || legacy, "{name}: version {major} is neither current nor read by an upcaster");
    }
}
