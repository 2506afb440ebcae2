//! Exactly-once effects on top of at-least-once delivery.
//!
//! - **Outbox**: a service writes the messages it sends in the same database
//!   transaction as the state change that caused them ([`enqueue`]). The
//!   [`OutboxRelay`] publishes them to Kafka in commit order: handed the rows
//!   by a [`UnitOfWork`] that commits in its own process, woken by `NOTIFY`
//!   for rows committed elsewhere, with slow polling as a fallback. A crash between
//!   publishing and marking rows sent republishes them: duplicates, never loss.
//! - **Inbox**: a consumer records each message it processed in its handler's
//!   transaction ([`claim`]); a redelivered message finds its row and is skipped.
//!
//! Both tables live in each service's own database; run [`MIGRATOR`] there
//! next to the service's migrations (it keeps its own history table).

mod apply;
mod classify;
pub mod inbox;
pub mod listen;
mod relay;
mod stamp;
mod store_error;
mod unit_of_work;
mod writer;

pub use apply::{Apply, Committed, apply_all, apply_one};
pub use classify::{handler_error, is_transient};
pub use inbox::{Claim, InboxRows, already_processed, claim, claim_all, claim_of, claims, row_of, seen_before};
pub use relay::{Backlog, IN_PROCESS, OutboxRelay, RelayError, RelaySettings, RelayStatus};
pub use stamp::{caused_by, first_message, new_message_id};
pub use store_error::{Corrupt, StoreError};
pub use unit_of_work::{Settled, UnitOfWork};
pub use writer::{OutboxError, OutboxRows, enqueue};

/// Creates the outbox and inbox tables.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
