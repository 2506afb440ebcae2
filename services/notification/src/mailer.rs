use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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
/// Connections have Nagle's algorithm off: the client writes the body and then
/// the short end-of-data line, and with Nagle on that line waits for the
/// server's delayed acknowledgement, about 40 ms on Linux, which made the
/// mailer send one email per 47 ms at best.
///
/// A connection that has sent an email is kept for the next one (see
/// [`IdleConnections`]): servers make a new connection wait before they greet
/// it (MailDev's SMTP server waits 100 ms to catch clients that talk too soon;
/// an MTA's greeting pause can be seconds), and a connection per email paid
/// that wait on every checkout. lettre's own pooled transport is not used
/// because it connects without a way to turn Nagle's algorithm off.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    host: String,
    port: u16,
    timeout: Duration,
    hello_name: ClientId,
    idle: Arc<IdleConnections>,
}

/// Connections between emails, the most recently used last.
///
/// A connection is taken out only after a `NOOP` shows the server still
/// holds it, so one it closed while idle costs a round trip, never an email.
#[derive(Default)]
struct IdleConnections(Mutex<Vec<Idle>>);

struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// Most connections kept open between emails; more are closed when given back.
const MAX_IDLE_CONNECTIONS: usize = 16;
/// A connection idle longer than this is closed rather than used: servers
/// drop quiet clients (Postfix after 300 s, nodemailer's server after 60 s).
const MAX_IDLE_TIME: Duration = Duration::from_secs(30);

impl IdleConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The list stays valid whatever a panicking holder was doing.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used connection the server still answers, if any.
    async fn take(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let Idle { mut connection, since } = self.lock().pop()?;
            if since.elapsed() <= MAX_IDLE_TIME && connection.test_connected().await {
                return Some(connection);
            }
            connection.abort().await;
        }
    }

    async fn give_back(&self, mut connection: AsyncSmtpConnection) {
        {
            let mut idle = self.lock();
            // Dropped, an expired connection just closes its socket.
            idle.retain(|kept| kept.since.elapsed() <= MAX_IDLE_TIME);
            if idle.len() < MAX_IDLE_CONNECTIONS {
                idle.push(Idle { connection, since: Instant::now() });
                return;
            }
        }
        let _ = connection.quit().await;
    }
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(host: &str, port: u16, from: &str, timeout: Duration) -> Result<Self, MailError> {
        let from = from.parse().map_err(|e: lettre::address::AddressError| MailError::Address(e.to_string()))?;
        Ok(Self { from, host: host.to_owned(), port, timeout, hello_name: ClientId::default(), idle: Arc::default() })
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
        let mut connection = match self.idle.take().await {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        // On an error lettre has already closed the connection; it is dropped.
        let response = connection.send(message.envelope(), &message.formatted()).await?;
        self.idle.give_back(connection).await;
        Ok(response.message().collect::<Vec<_>>().join(" "))
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        stream.set_nodelay(true)?;
        Ok(AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello_name).await?)
    }
}

pub fn message_id(order: OrderId, kind: &str) -> String {
    format!("<{}.{kind}@checkout-saga.local>", order.as_uuid().simple())
}
