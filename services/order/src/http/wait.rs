//! `Prefer: wait=<seconds>` (RFC 7240) on `GET /orders/{id}`: a client that
//! wants an order's outcome asks once and is answered as soon as the status
//! changes, instead of polling.
//!
//! Each instance listens on the `order_status` channel, which the database
//! notifies (at commit, with the order id) when an order is confirmed or
//! cancelled, whichever instance wrote it. A waiting request registers a
//! watch on its order *before* it reads the order, so a change committed
//! between the read and the wait still wakes it; it holds no connection
//! while it waits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::HeaderValue;
use checkout_domain::OrderId;
use checkout_outbox::listen::{Heard, Listener};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The channel the `order_status_notify` trigger notifies.
pub const CHANNEL: &str = "order_status";

/// The longest wait granted: below the server's 30 s request timeout.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// The `wait` preference of a request, capped at [`MAX_WAIT`]; `None` when
/// there is none or it is not a number of seconds (RFC 7240 §2: a preference
/// a server does not understand is ignored, never an error).
///
/// Written here because no maintained crate parses `Prefer`; only the
/// `wait` token is read: `Prefer: respond-async, wait=10` and
/// `Prefer: wait="10"` both ask for ten seconds.
pub fn requested(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|preference| {
            // Parameters after ';' belong to the preference; `wait` has none.
            let token = preference.split(';').next()?.trim();
            let (name, value) = token.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            let seconds: u64 = value.trim().trim_matches('"').parse().ok()?;
            Some(Duration::from_secs(seconds).min(MAX_WAIT))
        })
}

/// The `Preference-Applied` value for a wait that was honoured.
pub fn applied(wait: Duration) -> HeaderValue {
    HeaderValue::try_from(format!("wait={}", wait.as_secs())).unwrap_or_else(|_| HeaderValue::from_static("wait"))
}

/// The orders requests are waiting on, and a way to wake them.
#[derive(Clone, Debug, Default)]
pub struct Outcomes(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    watched: Mutex<HashMap<OrderId, Watched>>,
    /// Cancelled at shutdown: every wait ends at once.
    closing: CancellationToken,
}

#[derive(Debug)]
struct Watched {
    changes: watch::Sender<()>,
    waiters: usize,
}

impl Outcomes {
    /// Watches `order` from now on, until the watch is dropped.
    pub fn watch(&self, order: OrderId) -> Watch {
        let mut watched = self.0.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = watched.entry(order).or_insert_with(|| Watched { changes: watch::Sender::new(()), waiters: 0 });
        entry.waiters += 1;
        let changes = entry.changes.subscribe();
        Watch { outcomes: self.clone(), order, changes }
    }

    /// What the listener heard: one order changed, or (listening afresh)
    /// any may have.
    pub fn heard(&self, heard: Heard<'_>) {
        let watched = self.0.watched.lock().unwrap_or_else(PoisonError::into_inner);
        match heard {
            Heard::Notified(payload) => {
                if let Some(entry) = payload.parse().ok().and_then(|order: OrderId| watched.get(&order)) {
                    entry.changes.send_replace(());
                }
            }
            Heard::Listening => {
                for entry in watched.values() {
                    entry.changes.send_replace(());
                }
            }
        }
    }

    /// Listens for status changes of `pool`'s orders until `stop`, then
    /// ends every wait (so that shutdown is not held up by them).
    pub async fn listen(self, pool: PgPool, stop: CancellationToken) -> Result<(), Infallible> {
        let outcomes = self.clone();
        let _listening = Listener::spawn(&pool, CHANNEL, stop.clone(), move |heard| outcomes.heard(heard));
        stop.cancelled().await;
        self.0.closing.cancel();
        Ok(())
    }

    /// How many orders are being waited on (tests).
    pub fn watched(&self) -> usize {
        self.0.watched.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One request's watch on one order.
#[derive(Debug)]
pub struct Watch {
    outcomes: Outcomes,
    order: OrderId,
    changes: watch::Receiver<()>,
}

impl Watch {
    /// Waits until the order may have changed since the watch was made or
    /// last woke; `false` at shutdown.
    pub async fn changed(&mut self) -> bool {
        tokio::select! {
            biased;
            () = self.outcomes.0.closing.cancelled() => false,
            changed = self.changes.changed() => changed.is_ok(),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watched = self.outcomes.0.watched.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = watched.get_mut(&self.order) {
            entry.waiters -= 1;
            if entry.waiters == 0 {
                watched.remove(&self.order);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header::HeaderName;
    use uuid::Uuid;

    use super::*;

    fn prefer(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HeaderName::from_static("prefer"), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_wait_preference_is_read_among_others_and_capped() {
        assert_eq!(requested(&prefer(&["wait=10"])), Some(Duration::from_secs(10)));
        assert_eq!(requested(&prefer(&["respond-async, WAIT = 5"])), Some(Duration::from_secs(5)));
        assert_eq!(requested(&prefer(&["return=minimal", "wait=\"3\""])), Some(Duration::from_secs(3)));
        assert_eq!(requested(&prefer(&["wait=3600"])), Some(MAX_WAIT));
        assert_eq!(requested(&prefer(&["wait=0"])), Some(Duration::ZERO));
    }

    #[test]
    fn no_or_unreadable_wait_preference_is_ignored() {
        assert_eq!(requested(&HeaderMap::new()), None);
        assert_eq!(requested(&prefer(&["respond-async"])), None);
        assert_eq!(requested(&prefer(&["wait=soon"])), None);
        assert_eq!(requested(&prefer(&["wait=-1"])), None);
        assert_eq!(requested(&prefer(&["waiting=4"])), None);
    }

    #[test]
    fn preference_applied_names_the_wait_granted() {
        assert_eq!(applied(Duration::from_secs(7)), "wait=7");
    }

    #[tokio::test]
    async fn a_notification_wakes_only_the_watches_of_its_order_and_a_watch_ends_with_its_last_waiter() {
        let outcomes = Outcomes::default();
        let (a, b) = (OrderId::from_uuid(Uuid::now_v7()), OrderId::from_uuid(Uuid::now_v7()));
        let (mut first, mut second, mut other) = (outcomes.watch(a), outcomes.watch(a), outcomes.watch(b));
        assert_eq!(outcomes.watched(), 2);

        outcomes.heard(Heard::Notified(&a.to_string()));
        outcomes.heard(Heard::Notified("not an order id"));
        assert!(first.changed().await && second.changed().await, "both watches of the order wake");
        let woke = tokio::time::timeout(Duration::from_millis(50), other.changed()).await;
        assert!(woke.is_err(), "another order's watch sleeps on");

        outcomes.heard(Heard::Listening);
        assert!(other.changed().await, "listening afresh wakes every watch");

        drop(first);
        assert_eq!(outcomes.watched(), 2);
        drop((second, other));
        assert_eq!(outcomes.watched(), 0, "nothing is kept once nobody waits");
    }

    #[tokio::test]
    async fn closing_ends_every_wait() {
        let outcomes = Outcomes::default();
        let mut watch = outcomes.watch(OrderId::from_uuid(Uuid::now_v7()));
        outcomes.0.closing.cancel();
        assert!(!watch.changed().await);
    }
}
