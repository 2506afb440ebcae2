//! Which records of one partition may be processed now, and how far the
//! partition's offset may be committed: the bookkeeping of key-level
//! concurrency, without I/O so that it can be tested on its own.
//!
//! Records of one key are processed strictly in the order they arrived,
//! records of different keys at the same time. The committable offset only
//! moves to the end of the contiguous run of finished records, so a crash
//! redelivers the unfinished records and the finished ones after the first
//! unfinished (which the inbox absorbs), never skips one.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// One partition's records between their arrival and the committable point.
#[derive(Debug)]
pub(crate) struct Lanes<K, R> {
    /// Every record received and not yet committable, in offset order.
    slots: VecDeque<Slot>,
    /// The keys with a record being processed, each with the records of the
    /// same key that wait behind it, in arrival order.
    busy: HashMap<K, VecDeque<R>>,
}

#[derive(Debug)]
struct Slot {
    offset: i64,
    /// When the record was produced (milliseconds since the epoch), if known.
    produced_ms: Option<i64>,
    finished: bool,
}

/// How far the partition is processed, once a finished record closed a gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Committable {
    /// The last offset of the contiguous run of finished records.
    pub offset: i64,
    pub produced_ms: Option<i64>,
}

/// What finishing one record allows.
#[derive(Debug)]
#[cfg(test)]
pub(crate) struct Finished<R> {
    /// The next record of the same key, which may start now.
    pub next: Option<R>,
    /// Set when the committable offset moved forward.
    pub committable: Option<Committable>,
}

impl<K, R> Default for Lanes<K, R> {
    fn default() -> Self {
        Self { slots: VecDeque::new(), busy: HashMap::new() }
    }
}

impl<K: Hash + Eq, R> Lanes<K, R> {
    /// Takes a record that arrived (offsets arrive in increasing order).
    /// Returns it when it may start at once, or keeps it behind the record of
    /// its key that is being processed.
    pub(crate) fn admit(&mut self, key: K, offset: i64, produced_ms: Option<i64>, record: R) -> Option<R> {
        self.slots.push_back(Slot { offset, produced_ms, finished: false });
        match self.busy.entry(key) {
            Entry::Occupied(mut waiting) => {
                waiting.get_mut().push_back(record);
                None
            }
            Entry::Vacant(idle) => {
                idle.insert(VecDeque::new());
                Some(record)
            }
        }
    }

    /// Marks the record at `offset`, of `key`, as finished (handled or
    /// dead-lettered). Only a record that was started may be finished.
    #[cfg(test)]
    pub(crate) fn finish(&mut self, key: &K, offset: i64) -> Finished<R> {
        let committable = self.mark_finished(offset);
        Finished { next: self.release(key), committable }
    }

    /// Takes up to `max` of the records waiting behind `key`'s running
    /// record, in order, to be processed with it: the key stays busy until
    /// [`release`](Self::release) after all of them are finished.
    pub(crate) fn take_waiting(&mut self, key: &K, max: usize) -> Vec<R> {
        match self.busy.get_mut(key) {
            Some(waiting) => waiting.drain(..waiting.len().min(max)).collect(),
            None => Vec::new(),
        }
    }

    /// Marks the started record at `offset` finished (handled or
    /// dead-lettered); returns how far the partition may now be committed,
    /// if that moved.
    pub(crate) fn mark_finished(&mut self, offset: i64) -> Option<Committable> {
        if let Ok(index) = self.slots.binary_search_by_key(&offset, |slot| slot.offset)
            && let Some(slot) = self.slots.get_mut(index)
        {
            slot.finished = true;
        }
        let mut committable = None;
        while let Some(slot) = self.slots.pop_front_if(|slot| slot.finished) {
            committable = Some(Committable { offset: slot.offset, produced_ms: slot.produced_ms });
        }
        committable
    }

    /// `key`'s running records are all finished: returns its next waiting
    /// record, which may start now, or frees the key.
    pub(crate) fn release(&mut self, key: &K) -> Option<R> {
        let waiting = self.busy.get_mut(key)?;
        let next = waiting.pop_front();
        if next.is_none() {
            self.busy.remove(key);
        }
        next
    }

    /// When the oldest unfinished record was produced, if any is unfinished
    /// and its time is known: the front of the slots is never finished.
    pub(crate) fn oldest_unfinished_ms(&self) -> Option<i64> {
        self.slots.front().and_then(|slot| slot.produced_ms)
    }

    /// The last record finished behind an unfinished one, if any: until
    /// every record before it is finished too, the committable offset stays
    /// short of records already processed.
    pub(crate) fn last_finished_behind_gap(&self) -> Option<i64> {
        // The front slot is never finished, so any finished slot is behind a gap.
        self.slots.iter().rev().find(|slot| slot.finished).map(|slot| slot.offset)
    }

    /// Records received and not yet committable (started, waiting or finished
    /// after a gap).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_slow_record_holds_back_its_key_and_the_committed_offset_but_not_other_keys() {
        let mut lanes = Lanes::default();
        assert_eq!(lanes.admit("a", 10, None, "a1"), Some("a1"));
        assert_eq!(lanes.admit("b", 11, None, "b1"), Some("b1"), "another key starts at once");
        assert_eq!(lanes.admit("a", 12, None, "a2"), None, "waits behind a1");

        let finished = lanes.finish(&"b", 11);
        assert_eq!(finished.next, None);
        assert_eq!(finished.committable, None, "10 is not finished");
        assert_eq!(lanes.last_finished_behind_gap(), Some(11), "11 is finished behind 10");

        let finished = lanes.finish(&"a", 10);
        assert_eq!(finished.next, Some("a2"));
        assert_eq!(finished.committable, Some(Committable { offset: 11, produced_ms: None }));
        assert_eq!(lanes.held(), 1);
        assert_eq!(lanes.last_finished_behind_gap(), None, "no gap left");

        let finished = lanes.finish(&"a", 12);
        assert_eq!((finished.next, finished.committable.map(|c| c.offset)), (None, Some(12)));
        assert_eq!(lanes.held(), 0);
    }

    #[test]
    fn records_taken_from_behind_a_running_one_hold_their_key_until_released() {
        let mut lanes = Lanes::default();
        assert_eq!(lanes.admit("a", 1, None, "a1"), Some("a1"));
        for (offset, record) in [(2, "a2"), (3, "a3"), (4, "a4")] {
            assert_eq!(lanes.admit("a", offset, None, record), None);
        }
        assert_eq!(lanes.take_waiting(&"a", 2), ["a2", "a3"], "the next two, in order");
        assert_eq!(lanes.take_waiting(&"b", 2), Vec::<&str>::new());
        assert_eq!(lanes.mark_finished(2), None, "1 is not finished");
        assert_eq!(lanes.mark_finished(1).map(|c| c.offset), Some(2));
        assert_eq!(lanes.mark_finished(3).map(|c| c.offset), Some(3));
        assert_eq!(lanes.release(&"a"), Some("a4"), "a4 starts only once the run is released");
        assert_eq!(lanes.mark_finished(4).map(|c| c.offset), Some(4));
        assert_eq!(lanes.release(&"a"), None);
        assert_eq!(lanes.held(), 0);
        assert_eq!(lanes.admit("a", 5, None, "a5"), Some("a5"), "the key is free again");
    }

    /// A partition's records and, for each step, which of the records in
    /// flight finishes next (as an index into them) once all have arrived
    /// or interleaved with arrivals.
    fn partitions() -> impl Strategy<Value = (Vec<u8>, Vec<(bool, usize)>)> {
        (prop::collection::vec(0u8..6, 1..80), prop::collection::vec((any::<bool>(), any::<usize>()), 0..200))
    }

    proptest! {
        /// Whatever the keys and whatever order records finish in: one
        /// record per key in flight, each key's records started in arrival
        /// order, the committable offset only ever moves forward over
        /// finished records, and at the end every record is finished and
        /// the last offset committable.
        #[test]
        fn per_key_order_and_contiguous_commits_hold((keys, choices) in partitions()) {
            let mut lanes: Lanes<u8, (u8, i64)> = Lanes::default();
            let mut in_flight: Vec<(u8, i64)> = Vec::new();
            let mut started: Vec<(u8, i64)> = Vec::new();
            let mut finished: HashSet<i64> = HashSet::new();
            let mut committed = -1_i64;
            let mut arrivals = keys.iter().enumerate().map(|(i, &k)| (k, i64::try_from(i).unwrap_or(i64::MAX)));
            let mut choices = choices.into_iter();

            let start = |record: (u8, i64), in_flight: &mut Vec<(u8, i64)>, started: &mut Vec<(u8, i64)>| {
                assert!(in_flight.iter().all(|&(k, _)| k != record.0), "two records of key {} in flight", record.0);
                in_flight.push(record);
                started.push(record);
            };
            loop {
                let (arrive, pick) = choices.next().unwrap_or((false, 0));
                if arrive || in_flight.is_empty() {
                    let Some((key, offset)) = arrivals.next() else {
                        if in_flight.is_empty() { break; }
                        continue;
                    };
                    if let Some(record) = lanes.admit(key, offset, Some(offset * 10), (key, offset)) {
                        start(record, &mut in_flight, &mut started);
                    }
                    continue;
                }
                let (key, offset) = in_flight.swap_remove(pick % in_flight.len());
                finished.insert(offset);
                let outcome = lanes.finish(&key, offset);
                if let Some(next) = outcome.next {
                    prop_assert_eq!(next.0, key);
                    start(next, &mut in_flight, &mut started);
                }
                if let Some(commit) = outcome.committable {
                    prop_assert!(commit.offset > committed, "moved back from {} to {}", committed, commit.offset);
                    prop_assert!((0..=commit.offset).all(|o| finished.contains(&o)), "committed past an unfinished record");
                    prop_assert_eq!(commit.produced_ms, Some(commit.offset * 10));
                    committed = commit.offset;
                }
            }
            let last = i64::try_from(keys.len()).unwrap_or(i64::MAX) - 1;
            prop_assert_eq!(committed, last);
            prop_assert_eq!(lanes.held(), 0);
            for key in 0..6 {
                let order: Vec<i64> = started.iter().filter(|(k, _)| *k == key).map(|&(_, o)| o).collect();
                prop_assert!(order.is_sorted(), "key {} started out of order: {:?}", key, order);
            }
            prop_assert_eq!(started.len(), keys.len());
        }
    }
}
