//! The running relay: what wakes it, and what it does on each wake-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::handoff::Taker;
use super::lease::Marking;
use super::status::Wake;
use super::{CHANNEL, OutboxRelay, Pass, RelayError, RelayStatus, Source};
use crate::listen::Listener;

/// What a wake-up did.
#[derive(Debug, Default)]
struct Woken {
    /// Another relay holds the lease.
    busy: bool,
    /// Rows a read of the database found and published.
    read: usize,
    /// Rows the broker did not acknowledge.
    failed: usize,
}

impl OutboxRelay {
    /// Publishes as rows commit until `shutdown`, then flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) {
        RelayStatus::export_zeroes();
        if let Err(error) = self.publisher.warm_up(Duration::from_secs(10)).await {
            tracing::warn!(%error, "producer warm-up failed; the first publish will wait for metadata");
        }
        // Taken before the first read of the database: whatever commits
        // after it is handed over, whatever committed before it is read.
        let taker = Taker::register(&self.pool);
        self.status.set_takes_handoffs(taker.is_some());
        // Each notification (and each fresh start of listening, in case one
        // was missed meanwhile) wakes the relay.
        let woken = Arc::new(Notify::new());
        let listener = Listener::spawn(&self.pool, CHANNEL, shutdown.clone(), {
            let woken = Arc::clone(&woken);
            move |_| woken.notify_one()
        });
        let mut last_prune = Instant::now();
        let mut failures = 0_u32;
        let mut wake = Wake::Start;
        let mut missed_in_a_row = 0_u32;
        // After a delivery failure, handed rows go through the database until
        // a read publishes everything: the failed row's key must not overtake it.
        let mut reading = false;
        loop {
            match self.on_wake(taker.as_ref(), wake, reading).await {
                Ok(done) => {
                    metrics::counter!("checkout_outbox_relay_passes_total", "result" => "ok").increment(1);
                    failures = 0;
                    reading = done.failed > 0 || (reading && done.busy);
                    if done.busy {
                        tracing::trace!("another relay holds this database's outbox");
                    }
                    if self.status.unannounced(wake, done.read, listener.is_listening(), &mut missed_in_a_row) {
                        tracing::warn!(
                            missed = missed_in_a_row,
                            "outbox relay is not being woken by notifications: rows were found only by polling; listening anew"
                        );
                        self.status.relistened();
                        missed_in_a_row = 0;
                        listener.relisten();
                    }
                }
                Err(error) => {
                    metrics::counter!("checkout_outbox_relay_passes_total", "result" => "failed").increment(1);
                    failures += 1;
                    reading = true;
                    tracing::warn!(%error, failures, "outbox relay pass failed; retrying");
                }
            }
            if last_prune.elapsed() >= self.settings.prune_interval {
                self.prune().await;
                last_prune = Instant::now();
            }
            // After a failure, wait for the poll interval (longer after
            // repeated failures), not for a notification that may never come.
            // While another relay holds the lock, listen as usual: it
            // publishes what it found, its own listener hears of rows
            // committed meanwhile, and the next notification tries again.
            let failing = failures > 0;
            let wait =
                if failing { self.settings.poll_interval * failures.clamp(1, 10) } else { self.settings.poll_interval };
            let Some(woke) = self.wait(&shutdown, &woken, taker.as_ref(), failing, wait).await else { break };
            wake = woke;
            self.status.woke(wake);
        }
        if let Err(error) = self.lease.lock().await.mark().await {
            tracing::warn!(%error, "marking published outbox rows on shutdown failed; they will be published again");
        }
        if let Err(error) = self.publisher.flush(Duration::from_secs(10)).await {
            tracing::warn!(%error, "producer flush on shutdown failed");
        }
        self.status.set_takes_handoffs(false);
        tracing::info!("outbox relay stopped");
    }

    /// Publishes what was handed over, then reads the database unless only
    /// a handover woke the relay and it needs no read. While `reading`,
    /// handed rows are left to the read.
    async fn on_wake(&self, taker: Option<&Taker>, wake: Wake, reading: bool) -> Result<Woken, RelayError> {
        let mut done = Woken::default();
        let handed = taker.map(Taker::take).unwrap_or_default();
        // Rows committed here that no `NOTIFY` announced and this pass does
        // not publish from memory: only a read of the table finds them.
        let left_to_table = handed.read_database || (reading && !handed.rows.is_empty());
        if !handed.rows.is_empty() && !reading {
            match self.pass(self.marking(), Source::Handed(&handed.rows)).await? {
                Pass::Published { failed, .. } => done.failed += failed,
                Pass::Busy => done.busy = true,
            }
        }
        if wake != Wake::Handoff || reading || left_to_table {
            let held = taker.map(Taker::held_ids).unwrap_or_default();
            let (busy, published, failed) = self.drain_reporting(&held).await?;
            if busy && left_to_table {
                // Tell whichever relay holds the lease.
                self.lease.lock().await.announce(&self.pool).await?;
            }
            done.busy |= busy;
            done.read = published;
            done.failed += failed;
        }
        Ok(done)
    }

    fn marking(&self) -> Marking {
        Marking::WhenDue {
            interval: self.settings.mark_interval,
            batch: usize::try_from(self.settings.batch_size).unwrap_or(usize::MAX),
        }
    }

    /// Waits for a notification (unless `failing`), rows handed over, or
    /// `wait`, marking what was published whenever it falls due meanwhile;
    /// `None` at shutdown.
    async fn wait(
        &self,
        shutdown: &CancellationToken,
        woken: &Notify,
        taker: Option<&Taker>,
        failing: bool,
        wait: Duration,
    ) -> Option<Wake> {
        let poll_at = tokio::time::Instant::now() + wait;
        loop {
            let marks_due = self.lease.lock().await.marks_due_in(self.settings.mark_interval);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                () = async { if let Some(taker) = taker { taker.ready().await } }, if taker.is_some() && !failing => {
                    return Some(Wake::Handoff);
                }
                () = woken.notified(), if !failing => return Some(Wake::Notification),
                () = tokio::time::sleep_until(poll_at) => return Some(Wake::Poll),
                () = tokio::time::sleep(marks_due.unwrap_or_default()), if marks_due.is_some() => {
                    let mut lease = self.lease.lock().await;
                    if let Err(error) = lease.mark().await {
                        tracing::warn!(%error, "marking published outbox rows failed; they will be published again");
                        lease.give_up().await;
                    }
                }
            }
        }
    }

    /// Drains the outbox, leaving out the rows of `handed`, marking what it
    /// published when that falls due; returns whether another relay was
    /// busy, how many rows were published and how many failed.
    async fn drain_reporting(&self, handed: &[uuid::Uuid]) -> Result<(bool, usize, usize), RelayError> {
        let (mut published, mut failures) = (0, 0);
        loop {
            match self.pass(self.marking(), Source::Table { leaving_out: handed }).await? {
                Pass::Published { count, full, failed } => {
                    published += count;
                    failures += failed;
                    if !full {
                        return Ok((false, published, failures));
                    }
                }
                Pass::Busy => return Ok((true, published, failures)),
            }
        }
    }

    /// Deletes the inbox rows older than their retention (by the database's
    /// clock, which stamped them), and any outbox
    /// rows a relay of the previous release marked published instead of
    /// deleting them (during a rolling upgrade).
    async fn prune(&self) {
        let inbox_retention = self.settings.inbox_retention.as_secs_f64();
        let pruned = async {
            let outbox = sqlx::query!("DELETE FROM outbox_messages WHERE published_at IS NOT NULL")
                .execute(&self.pool)
                .await?
                .rows_affected();
            let inbox = sqlx::query!(
                "DELETE FROM inbox_messages WHERE processed_at < now() - make_interval(secs => $1)",
                inbox_retention
            )
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok::<_, sqlx::Error>((outbox, inbox))
        };
        match pruned.await {
            Ok((outbox, inbox)) => tracing::debug!(outbox, inbox, "pruned old outbox and inbox rows"),
            Err(error) => tracing::warn!(%error, "pruning outbox and inbox failed"),
        }
    }
}
