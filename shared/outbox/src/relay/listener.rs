//! The relay's listener, in a task of its own on a connection of its own.
//!
//! `PgListener::recv` reconnects inside the call; awaited beside the relay's
//! poll tick, a reconnect slower than the tick would be dropped half done,
//! and a listener made from the service's pool would hand a connection that
//! still listens back to that pool (where nobody reads its notifications, so
//! they pin the server's notification queue). Here nothing but shutdown or a
//! deliberate relisten interrupts the listener, it reconnects with backoff,
//! and each notification (and each fresh start of listening, in case one was
//! missed meanwhile) wakes the relay through a [`Notify`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The channel the outbox trigger notifies on commit.
const CHANNEL: &str = "outbox_messages";
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Shared {
    wake: Notify,
    relisten: Notify,
    listening: AtomicBool,
}

/// The running listener, as the relay sees it.
#[derive(Clone, Debug)]
pub(super) struct Listener(Arc<Shared>);

impl Listener {
    /// Starts listening on a connection to `pool`'s database, outside the pool.
    pub(super) fn spawn(pool: &PgPool, shutdown: CancellationToken) -> Self {
        let shared = Arc::new(Shared::default());
        // One connection, kept as long as it lives: only for listening.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*pool.connect_options()).clone());
        tokio::spawn(listen(own, Arc::clone(&shared), shutdown));
        Self(shared)
    }

    /// Waits until a notification (or a fresh start of listening) arrives.
    pub(super) async fn woken(&self) {
        self.0.wake.notified().await;
    }

    /// Whether notifications can reach the relay right now.
    pub(super) fn is_listening(&self) -> bool {
        self.0.listening.load(Ordering::Relaxed)
    }

    /// Drops the connection and listens anew.
    pub(super) fn relisten(&self) {
        self.0.relisten.notify_one();
    }
}

async fn listen(pool: PgPool, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut backoff = FIRST_BACKOFF;
    while !shutdown.is_cancelled() {
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis(), "outbox listener unavailable; polling");
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
        // Rows may have been committed while nobody listened.
        shared.wake.notify_one();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = shared.relisten.notified() => break,
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => shared.wake.notify_one(),
                    Ok(None) => {
                        tracing::warn!("outbox listener lost its connection; listening anew");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "outbox listener failed; listening anew");
                        break;
                    }
                },
            }
        }
        shared.listening.store(false, Ordering::Relaxed);
    }
}
