//! The payloads of every command and event, grouped by the service that owns
//! the topic they travel on.
//!
//! Commands are imperative (`ReserveInventory`), events past tense
//! (`InventoryReserved`), compensations name what they undo
//! (`ReleaseInventory`, `VoidPayment`, `RefundPayment`). Payloads never repeat
//! the order id: it is the envelope's subject.
//!
//! Readers are tolerant: unknown fields are ignored, so a newer minor version
//! of a payload still decodes.

pub mod inventory;
pub mod notification;
pub mod order;
pub mod payment;
pub mod saga;

/// Lets a derived proptest strategy produce timestamps for payload fields.
#[cfg(feature = "arbitrary")]
pub(crate) fn arbitrary_time() -> impl proptest::strategy::Strategy<Value = time::OffsetDateTime> {
    use proptest::strategy::Strategy;
    // Any second from 1970 to 9999, with nanoseconds, always in UTC as we write them.
    (0_i64..253_402_300_799, 0_u32..1_000_000_000).prop_filter_map("representable time", |(secs, nanos)| {
        time::OffsetDateTime::from_unix_timestamp(secs).ok()?.replace_nanosecond(nanos).ok()
    })
}
