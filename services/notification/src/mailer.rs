use std::time::Duration;

use checkout_domain::{EmailAddress, OrderId};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tracing::Instrument;

use crate::email::Email;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid address: {0}")]
    Address(String),
    #[error("email could not be built: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// Sends email through one SMTP server (plain SMTP, as Mailpit speaks it).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(host: &str, port: u16, from: &str, timeout: Duration) -> Result<Self, MailError> {
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port).timeout(Some(timeout)).build();
        let from = from.parse().map_err(|e: lettre::address::AddressError| MailError::Address(e.to_string()))?;
        Ok(Self { transport, from, host: host.to_owned(), port })
    }

    /// Sends `email` to `to`; returns the server's reply. The Message-ID is
    /// derived from the order and the kind of email, so a resend after a crash
    /// carries the same id and mail clients show it once.
    pub async fn send(
        &self,
        order: OrderId,
        kind: &str,
        to: &EmailAddress,
        email: &Email,
    ) -> Result<String, MailError> {
        let to: Mailbox =
            to.as_str().parse().map_err(|e: lettre::address::AddressError| MailError::Address(e.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .message_id(Some(message_id(order, kind)))
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())?;
        let span = tracing::info_span!(
            "smtp.send",
            otel.name = "smtp send",
            otel.kind = "client",
            server.address = %self.host,
            server.port = self.port,
            notification.kind = kind,
        );
        let response = self.transport.send(message).instrument(span).await?;
        Ok(response.message().collect::<Vec<_>>().join(" "))
    }
}

pub fn message_id(order: OrderId, kind: &str) -> String {
    format!("<{}.{kind}@checkout-saga.local>", order.as_uuid().simple())
}
