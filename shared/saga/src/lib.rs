//! The checkout saga, as a pure and synchronous state machine.
//!
//! [`Saga::start`] begins a saga for a placed order; [`Saga::apply`] takes
//! the saga, one [`Input`] (a participant's reply, or a deadline passing) and
//! the current time, and returns a [`Transition`]: the next saga, the
//! [`Command`]s to send and the timeline entries to publish. Nothing here does I/O or reads
//! a clock; the orchestrator service persists the saga and sends the commands
//! through its outbox in one transaction.
//!
//! # Steps
//!
//! | step              | command              | success              | failure → compensate       |
//! |-------------------|----------------------|----------------------|----------------------------|
//! | reserve inventory | `ReserveInventory`   | `InventoryReserved`  | `InventoryReservationRejected`, timeout |
//! | authorize payment | `AuthorizePayment`   | `PaymentAuthorized`  | `PaymentDeclined`, timeout, reservation expired |
//! | commit inventory  | `CommitInventory`    | `InventoryCommitted` | `InventoryCommitRejected`, timeout |
//! | confirm order     | `ConfirmOrder`       | `OrderConfirmed`     | **pivot**: retried, never compensated |
//! | capture payment   | `CapturePayment`     | `PaymentCaptured`    | retried, then needs attention |
//! | notify customer   | `NotifyOrderConfirmed` | `CustomerNotified` | retried, then needs attention |
//!
//! Authorizing the payment and committing the inventory need nothing of
//! each other, only the prices the reservation quoted, so they are sent
//! together and the saga waits for both ([`SagaState::Running`]'s
//! `alongside`): the order is confirmed after the later reply. A failure of
//! either compensates whatever both may hold; the other's reply, when it
//! comes, is late. After the pivot, the capture and the confirmation email
//! go out together too, and the saga completes after the later reply. One
//! of them given up leaves the saga in `NeedsAttention` for it; the other's
//! reply is still recorded when it comes, and once the given-up step
//! succeeds (a late reply, or an operator's retry) the saga sends whichever
//! of the two it has not heard of.
//!
//! Confirming the order is the pivot: before it, any failure compensates, in
//! reverse, whatever may be held — void the payment (also when its
//! authorization merely timed out, as it may still succeed), release the
//! inventory (putting back stock already committed), cancel the order with
//! the reason, email the customer. After it, the saga only moves forward; a
//! step that exhausts its retries leaves the saga in `NeedsAttention` for an
//! operator rather than undo a promise made to the customer.
//!
//! The stock is committed *before* the pivot, so a reservation's time limit
//! can never run out once the customer has been promised the order: a saga
//! cannot end charged without its stock. A reservation that expired before
//! the commit is committed anyway while its stock is still free, and
//! otherwise cancels the order like any failure before the pivot; so once
//! the commit is sent, the saga leaves news of the expiry to its reply.
//!
//! `NeedsAttention` is not a dead end: a reply that arrives after its step
//! was given up is applied and the saga carries on (forward, or with the
//! compensation it was in), and [`Saga::operate`] takes an operator's
//! [`Operation`] — retry the step with a fresh attempt budget, or abort
//! before the pivot — or says with a [`Refusal`] why it does not apply.
//!
//! A customer's cancel (`OrderCancellationRequested`, which the order
//! service publishes only while the order is pending) is decided here too,
//! so a cancel that races the pivot has one outcome: while a step before the
//! pivot is running (or was given up without compensating) the saga
//! compensates for `customer_cancelled`; once `ConfirmOrder` has been sent the
//! cancel is ignored as [`Ignored::CancelRefused`] and the order stands.
//!
//! Replies are matched to the step awaiting them. A duplicate or late reply
//! changes nothing, except one that says something is held which the saga has
//! already given back: a late `PaymentAuthorized` is voided and a late
//! `InventoryReserved` released.

mod command;
mod input;
mod policy;
mod saga;
mod step;
mod transition;

pub use command::Command;
pub use input::Input;
pub use policy::{SagaPolicy, StepPolicy};
pub use saga::{
    ActiveStep, ConfirmationEmail, InventoryHold, PaymentHold, Phase, Saga, SagaState, SagaStatus, Unfinished,
    Unreported,
};
pub use step::Step;
pub use transition::{Ignored, Operation, Refusal, Transition};
