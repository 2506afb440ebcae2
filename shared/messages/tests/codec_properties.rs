//! Properties of the envelope codec over arbitrary messages and bytes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use checkout_messages::{DecodeError, Envelope, Message, MessageType, decode, encode};
use proptest::prelude::*;

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        any::<u128>(),
        any::<u128>(),
        checkout_domain::arbitrary::order_id(),
        "[a-z]{1,12}",
        0_i64..4_102_444_800,
        0_u32..1_000_000_000,
        any::<Message>(),
    )
        .prop_filter_map("representable time", |(id, cause, subject, service, secs, nanos, payload)| {
            let time = time::OffsetDateTime::from_unix_timestamp(secs).ok()?.replace_nanosecond(nanos).ok()?;
            let first = Envelope::first(
                uuid::Uuid::from_u128(cause).into(),
                checkout_messages::Source::service(&service),
                subject,
                time,
                (),
            );
            Some(first.caused(
                uuid::Uuid::from_u128(id).into(),
                checkout_messages::Source::service(&service),
                time,
                payload,
            ))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_envelope_round_trips_through_bytes(envelope in envelope()) {
        let bytes = encode(&envelope).unwrap();
        let decoded = decode(&bytes).unwrap();
        prop_assert_eq!(decoded.wire_version, envelope.payload.message_type().current_version());
        prop_assert_eq!(decoded.envelope, envelope);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn a_newer_major_version_is_never_guessed_at(envelope in envelope(), bump in 1_u16..100) {
        let mut json: serde_json::Value = serde_json::from_slice(&encode(&envelope).unwrap()).unwrap();
        let message_type = envelope.payload.message_type();
        let newer = message_type.current_version().major + bump;
        json["schemaversion"] = format!("{newer}.0").into();
        let result = decode(&serde_json::to_vec(&json).unwrap());
        prop_assert!(matches!(result, Err(DecodeError::UnsupportedVersion { .. })), "{:?}", result);
    }

    #[test]
    fn a_wrong_type_name_is_rejected_not_misread(envelope in envelope(), suffix in "[A-Za-z]{1,8}") {
        let mut json: serde_json::Value = serde_json::from_slice(&encode(&envelope).unwrap()).unwrap();
        let renamed = format!("{}{suffix}", envelope.payload.message_type());
        prop_assume!(MessageType::from_name(&renamed).is_none());
        json["type"] = renamed.into();
        let result = decode(&serde_json::to_vec(&json).unwrap());
        prop_assert!(matches!(result, Err(DecodeError::UnknownType(_))), "{:?}", result);
    }
}
