//! What a running relay counts: its wake-ups by source, the notifications it
//! missed, how often it listened anew, the rows it quarantined.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Polls in a row that found rows no notification announced before the
/// relay re-establishes its listener.
const MISSED_BEFORE_RELISTEN: u32 = 3;

/// What health checks and tests can see of a running relay.
#[derive(Clone, Debug, Default)]
pub struct RelayStatus(Arc<RelayCounters>);

#[derive(Debug, Default)]
struct RelayCounters {
    woken_by_notification: AtomicU64,
    woken_by_poll: AtomicU64,
    woken_by_handoff: AtomicU64,
    takes_handoffs: AtomicBool,
    /// Polls that found rows committed without a notification reaching the relay.
    missed_notifications: AtomicU64,
    relistens: AtomicU64,
    quarantined: AtomicU64,
}

impl RelayStatus {
    pub fn woken_by_notification(&self) -> u64 {
        self.0.woken_by_notification.load(Ordering::Relaxed)
    }

    /// Whether the running relay takes the rows this process's transactions
    /// commit (one relay per database and process does).
    pub fn takes_handoffs(&self) -> bool {
        self.0.takes_handoffs.load(Ordering::Relaxed)
    }

    pub(super) fn set_takes_handoffs(&self, takes: bool) {
        self.0.takes_handoffs.store(takes, Ordering::Relaxed);
    }

    /// Wake-ups by rows a transaction of this process handed over.
    pub fn woken_by_handoff(&self) -> u64 {
        self.0.woken_by_handoff.load(Ordering::Relaxed)
    }

    pub fn woken_by_poll(&self) -> u64 {
        self.0.woken_by_poll.load(Ordering::Relaxed)
    }

    pub fn missed_notifications(&self) -> u64 {
        self.0.missed_notifications.load(Ordering::Relaxed)
    }

    /// How often the relay gave up on its listener and listened anew.
    pub fn relistens(&self) -> u64 {
        self.0.relistens.load(Ordering::Relaxed)
    }

    pub fn quarantined(&self) -> u64 {
        self.0.quarantined.load(Ordering::Relaxed)
    }
}

/// What woke the relay for a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wake {
    Start,
    Notification,
    /// A transaction of this process handed rows over.
    Handoff,
    Poll,
}

impl RelayStatus {
    /// Registers the relay's counters at zero, so that they are exported
    /// (and `rate()` works) before the first event of a kind.
    pub(super) fn export_zeroes() {
        for source in ["notification", "handoff", "poll"] {
            metrics::counter!("checkout_outbox_relay_wakeups_total", "source" => source).absolute(0);
        }
        for result in ["ok", "failed"] {
            metrics::counter!("checkout_outbox_relay_passes_total", "result" => result).absolute(0);
        }
        for name in [
            "checkout_outbox_published_total",
            "checkout_outbox_delivery_failures_total",
            "checkout_outbox_quarantined_total",
            "checkout_outbox_relay_relistens_total",
            "checkout_outbox_relay_missed_notifications_total",
        ] {
            metrics::counter!(name).absolute(0);
        }
    }

    pub(super) fn woke(&self, wake: Wake) {
        let (counter, source) = match wake {
            Wake::Notification => (&self.0.woken_by_notification, "notification"),
            Wake::Handoff => (&self.0.woken_by_handoff, "handoff"),
            Wake::Start | Wake::Poll => (&self.0.woken_by_poll, "poll"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("checkout_outbox_relay_wakeups_total", "source" => source).increment(1);
    }

    pub(super) fn relistened(&self) {
        self.0.relistens.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("checkout_outbox_relay_relistens_total").increment(1);
    }

    pub(super) fn quarantined_one(&self) {
        self.0.quarantined.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("checkout_outbox_quarantined_total").increment(1);
    }

    /// After a pass: whether its rows were committed without the listener
    /// hearing of them, often enough in a row to stop trusting it.
    pub(super) fn unannounced(&self, wake: Wake, published: usize, listening: bool, missed_in_a_row: &mut u32) -> bool {
        match wake {
            Wake::Poll if listening && published > 0 => {
                *missed_in_a_row += 1;
                self.0.missed_notifications.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("checkout_outbox_relay_missed_notifications_total").increment(1);
                *missed_in_a_row >= MISSED_BEFORE_RELISTEN
            }
            Wake::Notification => {
                *missed_in_a_row = 0;
                false
            }
            Wake::Start | Wake::Handoff | Wake::Poll => false,
        }
    }
}
