//! A consumer whose every message is one state change in a transaction
//! ([`Apply`]), run as a [`Handler`]: a record in a transaction of its own,
//! the records a partition has ready in one, at the service clock's now.
//! Written once here, so that a service implements only `Apply`.

use checkout_kafka::{Handler, HandlerError, Incoming};
use checkout_outbox::{Apply, apply_all, apply_one};

use crate::clock;

/// `A` as a consumer's handler.
#[derive(Clone, Debug)]
pub struct Applied<A>(pub A);

impl<A: Apply> Handler for Applied<A> {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        apply_one(&self.0, message, clock::now()).await
    }

    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        apply_all(&self.0, messages, clock::now()).await
    }
}
