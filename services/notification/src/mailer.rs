use std::time::Duration;

use checkout_domain::{EmailAddress, OrderId};
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
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
    #[error("could not connect to the SMTP server: {0}")]
    Connect(#[from] std::io::Error),
    #[error("the SMTP server did not finish within {0:?}")]
    TimedOut(Duration),
}

impl MailError {
    /// Whether sending again later may succeed (the server is down, slow or
    /// busy), as opposed to a message that can never be built or addressed.
    pub fn is_transient(&self) -> bool {
        match self {
            // A 5xx reply (no such mailbox, message refused) will not change.
            Self::Smtp(error) => !error.is_permanent(),
            Self::Connect(_) | Self::TimedOut(_) => true,
            Self::Address(_) | Self::Build(_) => false,
        }
    }
}

/// Sends email through one SMTP server (plain SMTP, as Mailpit speaks it).
///
/// Each email gets its own connection with Nagle's algorithm off: the client
/// writes the body and then the short end-of-data line, and with Nagle on that
/// line waits for the server's delayed acknowledgement, about 40 ms on Linux,
/// which made the mailer send one email per 47 ms at best.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    host: String,
    port: u16,
    timeout: Duration,
    hello_name: ClientId,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(host: &str, port: u16, from: &str, timeout: Duration) -> Result<Self, MailError> {
        let from = from.parse().map_err(|e: lettre::address::AddressError| MailError::Address(e.to_string()))?;
        Ok(Self { from, host: host.to_owned(), port, timeout, hello_name: ClientId::default() })
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
        tokio::time::timeout(self.timeout, self.deliver(&message))
            .instrument(span)
            .await
            .map_err(|_elapsed| MailError::TimedOut(self.timeout))?
    }

    async fn deliver(&self, message: &Message) -> Result<String, MailError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        stream.set_nodelay(true)?;
        let mut connection = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello_name).await?;
        let response = connection.send(message.envelope(), &message.formatted()).await?;
        // The server has taken the message; a failed goodbye changes nothing.
        let _ = connection.quit().await;
        Ok(response.message().collect::<Vec<_>>().join(" "))
    }
}

pub fn message_id(order: OrderId, kind: &str) -> String {
    format!("<{}.{kind}@checkout-saga.local>", order.as_uuid().simple())
}
