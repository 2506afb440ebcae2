//! The orders whose sagas a batch of this process is applying.
//!
//! The orchestrator reads its sagas without locking them and writes them
//! back over the version it read (see `handler`). Replies to one saga often
//! arrive on two or three topics at once (the stock committed beside the
//! payment authorized; the order confirmed beside the capture and the
//! email), and two batches applying them side by side would both read the
//! saga, and the one that writes second would fail and be applied again: a
//! wasted write. So a batch first holds its orders here, all of them or
//! none, and a second batch of the same saga in this process waits for the
//! first instead of racing it. Between processes the write's guard decides.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use checkout_domain::OrderId;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Held {
    orders: Mutex<HashSet<OrderId>>,
    released: Notify,
}

impl Held {
    /// Waits until none of `orders` is held, then holds them all until the
    /// [`Holding`] is dropped. All or none, so two batches never wait for
    /// each other.
    pub async fn hold(self: &Arc<Self>, orders: &[OrderId]) -> Holding {
        let mut orders = orders.to_vec();
        orders.sort_unstable();
        orders.dedup();
        loop {
            // Registered before the check, so a release between the check
            // and the wait is not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut held = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
                if orders.iter().all(|order| !held.contains(order)) {
                    held.extend(orders.iter().copied());
                    return Holding { held: Arc::clone(self), orders };
                }
            }
            released.await;
        }
    }
}

/// Orders held by one batch; released on drop.
#[derive(Debug)]
pub struct Holding {
    held: Arc<Held>,
    orders: Vec<OrderId>,
}

impl Drop for Holding {
    fn drop(&mut self) {
        let mut held = self.held.orders.lock().unwrap_or_else(PoisonError::into_inner);
        for order in &self.orders {
            held.remove(order);
        }
        drop(held);
        self.held.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn order() -> OrderId {
        OrderId::from_uuid(uuid::Uuid::now_v7())
    }

    #[tokio::test]
    async fn a_batch_sharing_an_order_with_a_held_one_waits_for_it_and_others_do_not() {
        let held = Arc::new(Held::default());
        let (a, b, c) = (order(), order(), order());
        let first = held.hold(&[a, b]).await;
        let apart = tokio::time::timeout(Duration::from_secs(1), held.hold(&[c])).await;
        assert!(apart.is_ok(), "an order no batch holds is held at once");
        let sharing = tokio::spawn({
            let held = Arc::clone(&held);
            async move { held.hold(&[b, c, b]).await }
        });
        // `c` is still held by `apart` above until it is dropped here; `b` by `first`.
        drop(apart);
        // One thread: the spawned batch runs up to its wait while this one yields.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(!sharing.is_finished(), "a batch with an order held by another waits");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), sharing).await;
        assert!(matches!(second, Ok(Ok(_))), "and holds its orders once they are released");
    }
}
