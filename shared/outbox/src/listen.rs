//! A `LISTEN` on one PostgreSQL channel, in a task of its own on a
//! connection of its own.
//!
//! `PgListener::recv` reconnects inside the call; awaited beside other work
//! (a relay's poll tick, a request's deadline), a reconnect slower than that
//! work would be dropped half done, and a listener made from the service's
//! pool would hand a connection that still listens back to that pool (where
//! nobody reads its notifications, so they pin the server's notification
//! queue). Here nothing but shutdown or a deliberate relisten interrupts the
//! listener, it reconnects with backoff, and it reports each notification
//! and each fresh start of listening (notifications sent meanwhile were
//! missed) to the callback it was given.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the listener heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard<'a> {
    /// Listening (again): whatever was notified before may have been missed.
    Listening,
    /// A notification, with its payload.
    Notified(&'a str),
}

#[derive(Debug, Default)]
struct Shared {
    relisten: Notify,
    listening: AtomicBool,
}

/// The running listener.
#[derive(Clone, Debug)]
pub struct Listener(Arc<Shared>);

impl Listener {
    /// Starts listening on `channel` of `pool`'s database, on a connection
    /// outside the pool, until `shutdown`; `heard` is called on the
    /// listener's task and must return quickly.
    pub fn spawn(
        pool: &PgPool,
        channel: &'static str,
        shutdown: CancellationToken,
        heard: impl Fn(Heard<'_>) + Send + 'static,
    ) -> Self {
        let shared = Arc::new(Shared::default());
        // One connection, kept as long as it lives: only for listening.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*pool.connect_options()).clone());
        tokio::spawn(listen(own, channel, Arc::clone(&shared), shutdown, heard));
        Self(shared)
    }

    /// Whether notifications are being received right now.
    pub fn is_listening(&self) -> bool {
        self.0.listening.load(Ordering::Relaxed)
    }

    /// Drops the connection and listens anew.
    pub fn relisten(&self) {
        self.0.relisten.notify_one();
    }
}

async fn listen(
    pool: PgPool,
    channel: &'static str,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    heard: impl Fn(Heard<'_>),
) {
    let mut backoff = FIRST_BACKOFF;
    while !shutdown.is_cancelled() {
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, channel, retry_in_ms = backoff.as_millis(), "cannot listen; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        shared.listening.store(true, Ordering::Relaxed);
        heard(Heard::Listening);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = shared.relisten.notified() => break,
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => heard(Heard::Notified(notification.payload())),
                    Ok(None) => {
                        tracing::warn!(channel, "listener lost its connection; listening anew");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, channel, "listener failed; listening anew");
                        break;
                    }
                },
            }
        }
        shared.listening.store(false, Ordering::Relaxed);
    }
}
