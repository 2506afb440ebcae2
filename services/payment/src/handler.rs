use std::path::PathBuf;
use std::time::Duration;

use checkout_domain::{Money, OrderId};
use checkout_kafka::{Dependency, Handler, HandlerError, Incoming};
use checkout_messages::payloads::payment::{
    AuthorizePayment, DeclineCode, PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentVoided,
};
use checkout_messages::{Message, Source};
use checkout_outbox::{Claim, Settled, UnitOfWork, caused_by, claim_of, handler_error, row_of, seen_before};
use checkout_platform::clock;
use sqlx::PgPool;

use crate::gateway::{Authorization, AuthorizationRequest, GatewayError, IdempotencyKey, Operation, PaymentGateway};
use crate::ledger::{Plan, Status, plan};
use crate::store::{self, Change, Entry};

/// The payment service's name in the inbox.
const CONSUMER: &str = "payment";

/// Handles `AuthorizePayment`, `CapturePayment`, `VoidPayment` and `RefundPayment`.
///
/// The gateway is called outside any database transaction (a slow gateway
/// must not hold locks); its outcome is then recorded together with the
/// inbox entry and the reply. Every call is first claimed in the payment's
/// audit trail (committed, with its idempotency key), and the gateway is
/// given that key: a crash between the call and its record, or a command
/// delivered twice, repeats the call with the same key, which the gateway
/// answers without acting twice. An authorization is also recorded as under
/// way before the call, so a void that follows a crash still finds it.
#[derive(Debug, Clone)]
pub struct PaymentHandler<G> {
    pool: PgPool,
    gateway: G,
    gateway_timeout: Duration,
    source: Source,
    /// Fault injection for tests: while this file exists, the process
    /// deletes it and aborts right after the gateway captured, before the
    /// capture is recorded.
    abort_after_capture: Option<PathBuf>,
}

impl<G: PaymentGateway> PaymentHandler<G> {
    pub fn new(pool: PgPool, gateway: G, gateway_timeout: Duration) -> Self {
        checkout_outbox::inbox::describe(CONSUMER);
        Self { pool, gateway, gateway_timeout, source: Source::service("payment"), abort_after_capture: None }
    }

    /// See `PAYMENT_FAULT_ABORT_AFTER_CAPTURE`: only tests set it.
    #[must_use]
    pub fn with_abort_after_capture(mut self, marker: Option<PathBuf>) -> Self {
        self.abort_after_capture = marker;
        self
    }
}

/// What the gateway did, to be recorded.
enum Effect {
    Reply(Message),
    Authorized {
        authorization_id: String,
        amount: Money,
    },
    Declined {
        code: DeclineCode,
        detail: String,
        amount: Money,
    },
    /// The gateway did not answer in time: the outcome is unknown.
    Unanswered {
        amount: Money,
    },
    Captured {
        amount: Money,
    },
    Voided,
    Refunded {
        amount: Money,
    },
}

impl From<GatewayError> for HandlerError {
    fn from(error: GatewayError) -> Self {
        HandlerError::transient(Dependency::PaymentGateway, error)
    }
}

impl<G: PaymentGateway> Handler for PaymentHandler<G> {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let envelope = &message.envelope;
        let order = envelope.subject;
        let (processed, current) =
            store::load_unless_processed(&self.pool, CONSUMER, *envelope.id.as_uuid(), order).await?;
        if seen_before(CONSUMER, processed) {
            return Ok(());
        }
        // The status as this handling last read or wrote it.
        let mut seen = current.as_ref().map(|payment| payment.status);
        let effect = match plan(current.as_ref(), &envelope.payload) {
            Plan::Reply(reply) => Effect::Reply(reply),
            Plan::Refuse(reason) => return Err(HandlerError::permanent(reason)),
            Plan::Authorize => match &envelope.payload {
                Message::AuthorizePayment(command) => self.authorize(order, command, &mut seen).await?,
                _ => return Err(HandlerError::permanent("authorize planned for a non-authorize command")),
            },
            Plan::Capture { authorization_id, amount } => {
                let key = self.claim_call(order, Operation::Capture, Some(amount)).await?;
                self.within_timeout(self.gateway.capture(&key, &authorization_id, amount)).await?;
                self.injected_crash_after_capture();
                Effect::Captured { amount }
            }
            Plan::Void { authorization_id } => {
                let key = self.claim_call(order, Operation::Void, None).await?;
                self.within_timeout(self.gateway.void(&key, order, authorization_id.as_deref())).await?;
                Effect::Voided
            }
            Plan::Refund { authorization_id, amount } => {
                let key = self.claim_call(order, Operation::Refund, Some(amount)).await?;
                self.within_timeout(self.gateway.refund(&key, &authorization_id, amount)).await?;
                Effect::Refunded { amount }
            }
        };
        let command = row_of(envelope);
        if self.record_unlocked(message, command, seen, &effect).await? {
            return Ok(());
        }
        let mut work = UnitOfWork::begin(&self.pool).await.map_err(handler_error)?;
        let (claimed, previous) = store::claim_and_lock_status(work.conn(), CONSUMER, command, order).await?;
        if claim_of(CONSUMER, envelope, claimed) == Claim::Duplicate {
            return Ok(());
        }
        let (write, reply) = recording(previous, &effect);
        if let Some(reply) = reply {
            tracing::info!(reply = %reply.message_type(), "payment command handled");
            work.send(caused_by(envelope, &self.source, clock::now(), reply));
        }
        match write {
            // The status, its audit entry and the reply in one statement.
            Some(Write::Status(change, entry)) => {
                let outbox = work.take_outbox().map_err(handler_error)?;
                store::update_recording(work.conn(), order, change, entry, &outbox).await?;
            }
            Some(Write::Entry(entry)) => store::record_operation(work.conn(), order, entry).await?,
            None => {}
        }
        work.commit().await.map_err(handler_error)
    }
}

impl<G: PaymentGateway> PaymentHandler<G> {
    /// Records a new status decided from the status `seen`, in one
    /// statement that commits on its own, unless the status changed since
    /// (a command that overtook this one during the gateway call): then the
    /// statement writes nothing and this returns false, for the outcome to
    /// be recorded under the payment's lock. Other effects are left to that
    /// too (false).
    async fn record_unlocked(
        &self,
        message: &Incoming,
        command: (uuid::Uuid, &'static str),
        seen: Option<Status>,
        effect: &Effect,
    ) -> Result<bool, HandlerError> {
        let (Some(Write::Status(change, entry)), reply) = recording(seen, effect) else {
            return Ok(false);
        };
        let envelope = &message.envelope;
        let mut work = UnitOfWork::autocommit(&self.pool).await.map_err(handler_error)?;
        let replied = reply.as_ref().map(Message::message_type);
        if let Some(reply) = reply {
            work.send(caused_by(envelope, &self.source, clock::now(), reply));
        }
        let outbox = work.take_outbox().map_err(handler_error)?;
        let claimed =
            store::claim_recording(work.conn(), CONSUMER, command, envelope.subject, seen, change, entry, &outbox)
                .await;
        match work.settle(CONSUMER, envelope, claimed).await? {
            Settled::Committed => {
                if let Some(replied) = replied {
                    tracing::info!(reply = %replied, "payment command handled");
                }
                Ok(true)
            }
            Settled::Duplicate => Ok(true),
            Settled::Conflict => Ok(false),
        }
    }

    /// Claims a gateway call before making it: a committed `started` row in
    /// the audit trail, with the key the gateway is given.
    async fn claim_call(
        &self,
        order: OrderId,
        operation: Operation,
        amount: Option<Money>,
    ) -> Result<IdempotencyKey, HandlerError> {
        store::record_operation(&self.pool, order, Entry { operation, outcome: "started", amount, detail: None })
            .await?;
        Ok(IdempotencyKey::new(order, operation))
    }

    fn injected_crash_after_capture(&self) {
        if let Some(marker) = &self.abort_after_capture
            && std::fs::remove_file(marker).is_ok()
        {
            tracing::error!("fault injection: aborting after the gateway captured, before recording it");
            std::process::abort();
        }
    }

    /// Asks the gateway to authorize, after recording that it is under way
    /// (`seen` then holds the status that left).
    async fn authorize(
        &self,
        order: OrderId,
        command: &AuthorizePayment,
        seen: &mut Option<Status>,
    ) -> Result<Effect, HandlerError> {
        let amount = command.amount;
        *seen = Some(store::begin_authorization(&self.pool, order, amount).await?);
        let idempotency_key = IdempotencyKey::new(order, Operation::Authorize);
        let request =
            AuthorizationRequest { order_id: order, amount, card_token: command.card_token.clone(), idempotency_key };
        match tokio::time::timeout(self.gateway_timeout, self.gateway.authorize(&request)).await {
            Err(_elapsed) => {
                tracing::warn!(
                    timeout_ms = u64::try_from(self.gateway_timeout.as_millis()).unwrap_or(u64::MAX),
                    "payment gateway did not answer; the authorization's outcome is unknown"
                );
                Ok(Effect::Unanswered { amount })
            }
            Ok(Err(error)) => Err(error.into()),
            Ok(Ok(Authorization::Approved { authorization_id })) => Ok(Effect::Authorized { authorization_id, amount }),
            Ok(Ok(Authorization::Declined { code, detail })) => Ok(Effect::Declined { code, detail, amount }),
        }
    }

    async fn within_timeout(&self, call: impl Future<Output = Result<(), GatewayError>>) -> Result<(), HandlerError> {
        match tokio::time::timeout(self.gateway_timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_elapsed) => {
                Err(HandlerError::transient(Dependency::PaymentGateway, "payment gateway did not answer in time"))
            }
        }
    }
}

/// What recording an effect writes.
enum Write<'a> {
    /// A new status, with its audit entry.
    Status(Change<'a>, Entry<'a>),
    /// An audit entry alone.
    Entry(Entry<'a>),
}

/// What an effect writes (nothing for a reply alone) and the reply it sends.
fn recording(previous: Option<Status>, effect: &Effect) -> (Option<Write<'_>>, Option<Message>) {
    let change = |status| Change { status, authorization_id: None, decline: None };
    let entry = |operation, outcome, amount, detail| Entry { operation, outcome, amount, detail };
    match effect {
        Effect::Reply(reply) => (None, Some(reply.clone())),
        Effect::Authorized { authorization_id, amount } if previous == Some(Status::Voided) => {
            // A void overtook the call; the void at the gateway covers this approval.
            let late =
                entry(Operation::Authorize, "approved after void", Some(*amount), Some(authorization_id.as_str()));
            let detail = "the payment was voided while it was being authorized".to_owned();
            (Some(Write::Entry(late)), Some(PaymentDeclined { code: DeclineCode::AlreadyVoided, detail }.into()))
        }
        Effect::Authorized { authorization_id, amount } => {
            let authorized = Change { authorization_id: Some(authorization_id), ..change(Status::Authorized) };
            let approved = entry(Operation::Authorize, "approved", Some(*amount), Some(authorization_id.as_str()));
            let reply = PaymentAuthorized { authorization_id: authorization_id.clone(), amount: *amount };
            (Some(Write::Status(authorized, approved)), Some(reply.into()))
        }
        Effect::Declined { code, detail, amount } => {
            let declined = Change { decline: Some((*code, detail)), ..change(Status::Declined) };
            let entry = entry(Operation::Authorize, "declined", Some(*amount), Some(detail.as_str()));
            let reply = PaymentDeclined { code: *code, detail: detail.clone() };
            (Some(Write::Status(declined, entry)), Some(reply.into()))
        }
        Effect::Unanswered { amount } => {
            (Some(Write::Entry(entry(Operation::Authorize, "no answer", Some(*amount), None))), None)
        }
        Effect::Captured { amount } => {
            let entry = entry(Operation::Capture, "captured", Some(*amount), None);
            (Some(Write::Status(change(Status::Captured), entry)), Some(PaymentCaptured { amount: *amount }.into()))
        }
        Effect::Voided => {
            let entry = entry(Operation::Void, "voided", None, None);
            (Some(Write::Status(change(Status::Voided), entry)), Some(PaymentVoided {}.into()))
        }
        Effect::Refunded { amount } => {
            let entry = entry(Operation::Refund, "refunded", Some(*amount), None);
            (Some(Write::Status(change(Status::Refunded), entry)), Some(PaymentRefunded { amount: *amount }.into()))
        }
    }
}
