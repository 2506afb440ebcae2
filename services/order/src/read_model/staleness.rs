//! How stale the read model is, stated with every answer.
//!
//! Every `interval`, the monitor asks the broker where each partition of
//! the read topics ends, *then* reads how far the projection has got. Once
//! a partition's position has reached the end it had at an earlier check,
//! every record published to it before that check began is applied; the
//! latest such check, and the earliest of those across partitions, is
//! `consistent_as_of`: the read model reflects every event published before
//! it. `lag_records` is how many records remain to apply. Under steady load
//! a partition seldom sits exactly at its end, so each partition keeps the
//! ends of recent checks (a [`Frontier`]) rather than wait for that.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use checkout_kafka::{Partition, Watermarks};
use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::store::read_model as store;

/// The latest check, shared with the HTTP handlers.
#[derive(Clone, Debug, Default)]
pub struct Staleness {
    latest: Arc<RwLock<Option<Check>>>,
}

#[derive(Clone, Copy, Debug)]
struct Check {
    lag_records: i64,
    consistent_as_of: Option<OffsetDateTime>,
}

/// What a response says about its own freshness.
#[derive(Clone, Debug, Serialize)]
pub struct StalenessView {
    /// Records published to the read topics and not yet applied, at the last check.
    pub lag_records: Option<i64>,
    /// Every event published before this instant is reflected.
    #[serde(with = "time::serde::rfc3339::option")]
    pub consistent_as_of: Option<OffsetDateTime>,
    /// `now - consistent_as_of`: an upper bound on how old the answer is.
    pub staleness_seconds: Option<f64>,
}

impl Staleness {
    pub fn view(&self, now: OffsetDateTime) -> StalenessView {
        let check = self.latest.read().ok().and_then(|latest| *latest);
        let consistent_as_of = check.and_then(|c| c.consistent_as_of);
        StalenessView {
            lag_records: check.map(|c| c.lag_records),
            consistent_as_of,
            staleness_seconds: consistent_as_of.map(|at| (now - at).as_seconds_f64().max(0.0)),
        }
    }

    fn record(&self, check: Check) {
        if let Ok(mut latest) = self.latest.write() {
            *latest = Some(check);
        }
    }
}

#[allow(missing_debug_implementations, reason = "holds a Kafka client, which has no Debug")]
pub struct StalenessMonitor {
    pub staleness: Staleness,
    pub watermarks: Watermarks,
    pub pool: PgPool,
    pub topics: Vec<String>,
    pub interval: Duration,
}

impl StalenessMonitor {
    pub async fn run(self, stop: CancellationToken) -> Result<(), std::convert::Infallible> {
        let mut frontiers: BTreeMap<Partition, Frontier> = BTreeMap::new();
        // The ends at the last check, when the projection had reached them
        // all: while they stay put it still has (positions only move
        // forward), so an idle system costs no query.
        let mut reached: Option<BTreeMap<Partition, i64>> = None;
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                _ = ticks.tick() => {}
            }
            let started = checkout_platform::clock::now();
            let ends = match self.watermarks.ends(&self.topics).await {
                Ok(ends) => ends,
                Err(error) => {
                    tracing::warn!(%error, "read model lag: could not read where the topics end");
                    continue;
                }
            };
            if reached.as_ref() == Some(&ends) {
                for (partition, end) in &ends {
                    frontiers.entry(partition.clone()).or_default().observe(started, *end, *end);
                }
                self.publish(0, Some(started), started);
                continue;
            }
            let positions = match store::positions(&self.pool).await {
                Ok(rows) => rows.into_iter().map(|(t, p, next)| ((t, p), next)).collect::<BTreeMap<_, _>>(),
                Err(error) => {
                    tracing::warn!(%error, "read model lag: could not read its positions");
                    continue;
                }
            };
            let mut lag_records = 0;
            for (partition, end) in &ends {
                let next = positions.get(partition).copied().unwrap_or(0);
                lag_records += (end - next).max(0);
                frontiers.entry(partition.clone()).or_default().observe(started, *end, next);
            }
            let consistent_as_of =
                ends.keys().map(|p| frontiers.get(p).and_then(|f| f.consistent_as_of)).min().flatten();
            reached = (lag_records == 0).then_some(ends);
            self.publish(lag_records, consistent_as_of, started);
        }
    }

    fn publish(&self, lag_records: i64, consistent_as_of: Option<OffsetDateTime>, checked_at: OffsetDateTime) {
        metrics::gauge!("checkout_read_model_lag_records")
            .set(f64::from(i32::try_from(lag_records).unwrap_or(i32::MAX)));
        if let Some(at) = consistent_as_of {
            metrics::gauge!("checkout_read_model_staleness_seconds").set((checked_at - at).as_seconds_f64());
        }
        self.staleness.record(Check { lag_records, consistent_as_of });
    }
}

/// One partition's recent checks: when each began and where the partition
/// ended then, oldest first, until the projection's position passes them.
#[derive(Debug, Default)]
struct Frontier {
    pending: VecDeque<(OffsetDateTime, i64)>,
    consistent_as_of: Option<OffsetDateTime>,
}

impl Frontier {
    /// Checks kept while the projection is behind: ten minutes at 500 ms.
    /// Dropping the oldest only makes the stated bound more cautious.
    const KEPT: usize = 1200;

    /// A check that began at `at` saw the partition end at `end` and the
    /// projection's next offset at `next`.
    fn observe(&mut self, at: OffsetDateTime, end: i64, next: i64) {
        self.pending.push_back((at, end));
        while self.pending.len() > Self::KEPT {
            self.pending.pop_front();
        }
        while let Some(&(checked_at, end)) = self.pending.front() {
            if end > next {
                break;
            }
            self.consistent_as_of = Some(checked_at);
            self.pending.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::Frontier;

    #[test]
    fn a_partition_is_consistent_as_of_the_latest_check_whose_end_it_has_reached() {
        let t = |s: i64| datetime!(2026-12-03 10:00 UTC) + time::Duration::seconds(s);
        let mut frontier = Frontier::default();
        frontier.observe(t(0), 10, 4);
        assert_eq!(frontier.consistent_as_of, None, "behind from the start");
        frontier.observe(t(1), 20, 12);
        assert_eq!(frontier.consistent_as_of, Some(t(0)), "past the first check's end, not the second's");
        frontier.observe(t(2), 30, 25);
        assert_eq!(frontier.consistent_as_of, Some(t(1)));
        frontier.observe(t(3), 30, 30);
        assert_eq!(frontier.consistent_as_of, Some(t(3)), "at the end: consistent as of this check");
    }
}
