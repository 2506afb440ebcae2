//! Readers for older major versions, each converting to the current payload.
//!
//! Keep an upcaster for as long as records of its version may still sit in a
//! topic (retention) or an outbox. A type/major pair with no entry here is
//! unsupported and its records are dead-lettered.

use checkout_domain::{CardToken, Currency, Money};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::payloads::payment::AuthorizePayment;
use crate::{Message, MessageType};

/// Decodes `data` written at an older `major` version and upcasts it, or
/// `None` when no reader for that version exists.
pub(crate) fn upcast(message_type: MessageType, major: u16, data: &RawValue) -> Option<Result<Message, UpcastError>> {
    match (message_type, major) {
        (MessageType::AuthorizePayment, 1) => {
            Some(read::<AuthorizePaymentV1, AuthorizePayment>(data).map(Message::from))
        }
        _ => None,
    }
}

/// Schemas of the older versions still read, for the committed schema files.
pub(crate) fn legacy_schemas(generator: &mut SchemaGenerator) -> Vec<(MessageType, u16, Schema)> {
    vec![(MessageType::AuthorizePayment, 1, generator.root_schema_for::<AuthorizePaymentV1>())]
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpcastError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

fn read<Old, Current>(data: &RawValue) -> Result<Current, UpcastError>
where
    Old: for<'de> Deserialize<'de> + TryInto<Current, Error = UpcastError>,
{
    serde_json::from_str::<Old>(data.get())?.try_into()
}

/// `AuthorizePayment` 1.x: the amount in euro cents, before the shop sold in
/// more than one currency.
#[derive(Deserialize, JsonSchema)]
#[schemars(rename = "AuthorizePayment")]
struct AuthorizePaymentV1 {
    /// Amount in euro cents.
    amount_minor: i64,
    card_token: CardToken,
}

impl TryFrom<AuthorizePaymentV1> for AuthorizePayment {
    type Error = UpcastError;

    fn try_from(v1: AuthorizePaymentV1) -> Result<Self, Self::Error> {
        let amount = Money::new(v1.amount_minor, Currency::EUR).map_err(|e| UpcastError::Invalid(e.to_string()))?;
        Ok(Self { amount, card_token: v1.card_token })
    }
}
