//! The Kafka adapter every service uses.
//!
//! - [`Publisher`]: idempotent, `acks=all` producer; records keyed by order id,
//!   envelope attributes and W3C trace context in headers; sends are enqueued
//!   and awaited together, never one round trip at a time.
//! - [`ConsumerRuntime`]: consumer-group loop that processes each partition in
//!   order, several partitions at once (bounded), stores an offset only after
//!   the handler returned (i.e. after its database transaction committed),
//!   retries transient failures with bounded backoff and dead-letters
//!   permanent ones, then moves on. Nothing a record does can stop the loop.
//! - [`admin`]: topic creation and existence checks.
//! - [`Watermarks`] and [`Replay`]: where partitions end, and every record
//!   from offset 0 to there, outside any consumer group (read-model rebuilds).
//!
//! Exactly-once effects are not this crate's job: the broker may deliver a
//! record twice. Producers write through an outbox and consumers record what
//! they processed in an inbox (`checkout-outbox`).

pub mod admin;
mod consumer;
mod dead_letter;
mod headers;
mod partitioner;
mod producer;
mod replay;
mod retry;
mod settings;
mod topics;

pub use consumer::{
    BoxError, ConsumerError, ConsumerRuntime, ConsumerStatus, Dependency, Handler, HandlerError, Incoming,
    RecordPosition,
};
pub use dead_letter::{DeadLetterHeader, ErrorClass};
pub use headers::{RecordHeaders, header_names};
pub use partitioner::partition_for_key;
pub use producer::{Delivered, OutgoingRecord, PendingDelivery, PublishError, Publisher};
pub use replay::{Partition, Replay, ReplayError, Replayed, Watermarks};
pub use retry::RetryPolicy;
pub use settings::{ConsumerSettings, KafkaSettings, RecordOrdering};
pub use topics::{Retention, TopicNames, TopicSpec};
