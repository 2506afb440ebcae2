//! A real SMTP server for tests: it speaks enough of RFC 5321 for a client
//! like lettre, keeps every message it accepts, and can play dead, hang, or
//! refuse a mailbox, or take its time over each message like a busy provider.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One accepted message.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, as sent.
    pub data: String,
}

impl ReceivedMail {
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|line| !line.is_empty())
            .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim())
    }
}

#[derive(Default)]
struct Shared {
    mail: Mutex<Vec<ReceivedMail>>,
    refusing: AtomicBool,
    silent: AtomicBool,
    unknown_mailboxes: Mutex<Vec<String>>,
    /// How long each message's final reply is held back.
    delay: Mutex<Duration>,
    sessions: AtomicUsize,
    peak_sessions: AtomicUsize,
    connections: AtomicUsize,
    /// Whether each session is closed right after its first message.
    hang_up_after_message: AtomicBool,
}

/// The server; it runs on a thread of its own until the process ends.
#[derive(Clone)]
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Starts listening on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, Arc::clone(&serving)));
                }
            });
        });
        Self { addr, shared }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn mail(&self) -> Vec<ReceivedMail> {
        self.shared.mail.lock().unwrap().clone()
    }

    /// While refusing, every connection is answered `421` and closed, as by a server that is down.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// While silent, connections are accepted and never answered, as by a server that hangs.
    pub fn silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// Holds back the reply to each message's data this long, as a slow
    /// mail provider does.
    pub fn delay_replies(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// The most SMTP sessions that were open at the same moment.
    pub fn peak_sessions(&self) -> usize {
        self.shared.peak_sessions.load(Ordering::SeqCst)
    }

    /// How many connections the server has accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// While set, the server closes each connection right after answering
    /// its message, without a word, as one that drops idle clients at once.
    pub fn hang_up_after_each_message(&self, hang_up: bool) {
        self.shared.hang_up_after_message.store(hang_up, Ordering::SeqCst);
    }

    /// Answers `550` (a permanent failure) to `RCPT TO` for this address.
    pub fn reject_mailbox(&self, address: &str) {
        self.shared.unknown_mailboxes.lock().unwrap().push(address.to_owned());
    }

    /// Accepts this address again (after [`reject_mailbox`](Self::reject_mailbox)).
    pub fn accept_mailbox(&self, address: &str) {
        self.shared.unknown_mailboxes.lock().unwrap().retain(|known| known != address);
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let open = shared.sessions.fetch_add(1, Ordering::SeqCst) + 1;
    shared.peak_sessions.fetch_max(open, Ordering::SeqCst);
    let served = converse(stream, &shared).await;
    shared.sessions.fetch_sub(1, Ordering::SeqCst);
    served
}

async fn converse(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    if shared.refusing.load(Ordering::SeqCst) {
        writer.write_all(b"421 sink.test Service not available\r\n").await?;
        return Ok(());
    }
    if shared.silent.load(Ordering::SeqCst) {
        // Hold the connection open without a word until the client gives up.
        while lines.next_line().await?.is_some() {}
        return Ok(());
    }
    writer.write_all(b"220 sink.test ESMTP\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-sink.test\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line);
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let recipient = address(&line);
            if shared.unknown_mailboxes.lock().unwrap().contains(&recipient) {
                b"550 5.1.1 No such mailbox\r\n"
            } else {
                to.push(recipient);
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = String::new();
            while let Some(line) = lines.next_line().await? {
                if line == "." {
                    break;
                }
                data.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
                data.push('\n');
            }
            let delay = *shared.delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            shared.mail.lock().unwrap().push(ReceivedMail { from: from.clone(), to: std::mem::take(&mut to), data });
            if shared.hang_up_after_message.load(Ordering::SeqCst) {
                writer.write_all(b"250 OK queued\r\n").await?;
                return Ok(());
            }
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            writer.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 Command not implemented\r\n"
        };
        writer.write_all(reply).await?;
    }
    Ok(())
}

fn address(line: &str) -> String {
    line.split_once(':')
        .map(|(_, rest)| rest.trim().trim_start_matches('<').split('>').next().unwrap_or("").to_owned())
        .unwrap_or_default()
}
