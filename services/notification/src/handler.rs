use checkout_domain::EmailAddress;
use checkout_kafka::{Dependency, Handler, HandlerError, Incoming};
use checkout_messages::payloads::notification::{CustomerNotified, NotificationKind};
use checkout_messages::{Message, Source};
use checkout_outbox::{UnitOfWork, already_processed, caused_by, handler_error};
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
        if already_processed(&self.pool, CONSUMER, envelope).await.map_err(handler_error)? {
            return Ok(());
        }
        let name = kind_name(kind);
        let response = if store::sent_before(&self.pool, order, name).await? {
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

        let Some(mut work) = UnitOfWork::claim(&self.pool, CONSUMER, envelope).await.map_err(handler_error)? else {
            return Ok(());
        };
        let smtp_message_id = message_id(order, name);
        let sent = SentEmail {
            order,
            kind: name,
            recipient: recipient.as_str(),
            subject: &email.subject,
            smtp_message_id: &smtp_message_id,
            smtp_response: response.as_deref(),
        };
        store::record(work.conn(), &sent).await?;
        work.send(caused_by(envelope, &self.source, clock::now(), CustomerNotified { kind }));
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
