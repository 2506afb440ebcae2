use checkout_domain::EmailAddress;
use checkout_kafka::{Dependency, Handler, HandlerError, Incoming};
use checkout_messages::payloads::notification::{CustomerNotified, NotificationKind};
use checkout_messages::{Message, Source};
use checkout_outbox::{Claim, UnitOfWork, caused_by, claim_of, handler_error, row_of, seen_before};
use checkout_platform::clock;
use sqlx::PgPool;

use crate::email::{self, Email};
use crate::mailer::{Mailer, message_id};
use crate::store::{self, SentEmail};

/// The notification service's name in the inbox.
const CONSUMER: &str = "notification";

/// Emails the customer for `NotifyOrderConfirmed` and `NotifyOrderCancelled`.
///
/// One email per order and outcome: a repeat of either command, however it
/// arrives, finds the recorded email and only confirms it. The email is sent
/// before the record is written, so an unreachable SMTP server is retried
/// (the command stays unprocessed); a crash in the instant between the
/// server accepting the email and the commit would send it again.
#[derive(Debug, Clone)]
pub struct NotificationHandler {
    pool: PgPool,
    mailer: Mailer,
    source: Source,
}

impl NotificationHandler {
    pub fn new(pool: PgPool, mailer: Mailer) -> Self {
        checkout_outbox::inbox::describe(CONSUMER);
        Self { pool, mailer, source: Source::service("notification") }
    }
}

fn kind_name(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::OrderConfirmed => "order_confirmed",
        NotificationKind::OrderCancelled | NotificationKind::Other => "order_cancelled",
    }
}

impl Handler for NotificationHandler {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let envelope = &message.envelope;
        let order = envelope.subject;
        let (kind, recipient, email): (NotificationKind, &EmailAddress, Email) = match &envelope.payload {
            Message::NotifyOrderConfirmed(command) => {
                (NotificationKind::OrderConfirmed, &command.email, email::order_confirmed(order, &command.pricing))
            }
            Message::NotifyOrderCancelled(command) => {
                (NotificationKind::OrderCancelled, &command.email, email::order_cancelled(order, &command.reason))
            }
            other => {
                return Err(HandlerError::permanent(format!("{} is not a notification command", other.message_type())));
            }
        };
        let name = kind_name(kind);
        let before = store::before(&self.pool, CONSUMER, *envelope.id.as_uuid(), order, name).await?;
        if seen_before(CONSUMER, before.processed) {
            return Ok(());
        }
        let response = if before.sent {
            tracing::info!(notification.kind = name, "email already sent for this outcome; not sending again");
            None
        } else {
            let response = self.mailer.send(order, name, recipient, &email).await.map_err(|error| {
                let transient = error.is_transient();
                metrics::counter!("checkout_emails_failed_total", "kind" => name,
                    "class" => if transient { "transient" } else { "permanent" })
                .increment(1);
                if transient {
                    HandlerError::transient(Dependency::MailServer, error)
                } else {
                    HandlerError::permanent(error)
                }
            })?;
            metrics::counter!("checkout_emails_sent_total", "kind" => name).increment(1);
            tracing::info!(notification.kind = name, smtp.response = %response, "email sent");
            Some(response)
        };

        // The claim, the record and the reply in one statement, which commits
        // on its own: no `BEGIN`, no `COMMIT`. A duplicate claimed meanwhile
        // writes nothing, and its unit of work is dropped uncommitted (the
        // relay, handed nothing, reads the table).
        let mut work = UnitOfWork::autocommit(&self.pool).await.map_err(handler_error)?;
        work.send(caused_by(envelope, &self.source, clock::now(), CustomerNotified { kind }));
        let outbox = work.take_outbox().map_err(handler_error)?;
        let smtp_message_id = message_id(order, name);
        let sent = SentEmail {
            order,
            kind: name,
            recipient: recipient.as_str(),
            subject: &email.subject,
            smtp_message_id: &smtp_message_id,
            smtp_response: response.as_deref(),
        };
        let command = row_of(envelope);
        let claimed = store::claim_and_record(work.conn(), CONSUMER, command, &sent, &outbox).await?;
        if claim_of(CONSUMER, envelope, claimed) == Claim::Duplicate {
            return Ok(());
        }
        work.commit().await.map_err(handler_error)
    }
}

/// Registers the email counters at zero for every kind, so that they are
/// exported (and `rate()` works) before the first email.
pub fn export_zeroes() {
    for kind in [NotificationKind::OrderConfirmed, NotificationKind::OrderCancelled] {
        let name = kind_name(kind);
        metrics::counter!("checkout_emails_sent_total", "kind" => name).absolute(0);
        for class in ["transient", "permanent"] {
            metrics::counter!("checkout_emails_failed_total", "kind" => name, "class" => class).absolute(0);
        }
    }
}
