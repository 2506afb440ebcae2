//! New envelopes get their identity here, at the edge: a time-ordered id,
//! and the time the caller read once for the whole change. The message
//! contracts themselves never read a clock.

use checkout_domain::OrderId;
use checkout_messages::{Envelope, Message, MessageId, Source};
use time::OffsetDateTime;
use uuid::Uuid;

pub fn new_message_id() -> MessageId {
    MessageId::from_uuid(Uuid::now_v7())
}

/// The first message of a conversation about `order`.
pub fn first_message(
    source: &Source,
    order: OrderId,
    now: OffsetDateTime,
    payload: impl Into<Message>,
) -> Envelope<Message> {
    Envelope::first(new_message_id(), source.clone(), order, now, payload.into())
}

/// A message caused by `cause`: same order and conversation.
pub fn caused_by(
    cause: &Envelope<Message>,
    source: &Source,
    now: OffsetDateTime,
    payload: impl Into<Message>,
) -> Envelope<Message> {
    cause.caused(new_message_id(), source.clone(), now, payload.into())
}
