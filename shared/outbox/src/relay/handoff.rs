//! Rows handed from a committing transaction to its own process's relay.
//!
//! Found through `NOTIFY` and a read, each committed outbox row cost the
//! database a notification (its queue, a signal to the listening backend
//! and a wakeup on each side of the listener's socket) and the relay a read
//! of what it had just been told of: two round trips per hop of a checkout,
//! after the commit, in the latency of every message. The transaction that
//! wrote the rows knows them already, so it hands them over instead.
//!
//! A unit of work registers a slot *before* it sends `COMMIT` and fills it
//! (or abandons it) once the commit's outcome is known; the relay publishes
//! the slots in the order they were registered, waiting at the first one
//! still pending. A transaction that writes a key after another did waited
//! for the other's row lock, which was released by the other's commit, so
//! it registers after the other: registration order keeps each key's commit
//! order, as the position order of a read does.
//!
//! Every other case falls back on the database: a slot abandoned (a failed
//! or cancelled commit, whose outcome may be unknown), one pending for too
//! long, or rows written in a process with no relay, are found by the
//! relay's next read of the outbox, which leaves out every row a slot still
//! holds so that nothing is published twice on purpose.
//!
//! A process's connections say that their rows are handed over (the
//! `checkout.outbox_relay` setting, see [`IN_PROCESS`]) and the outbox's
//! trigger then sends no `NOTIFY` for them; a relay that does not hold the
//! lease sends one in its stead, for whichever relay does.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use super::lease::Row;
use crate::writer::OutboxRows;

/// The connection setting (`checkout.outbox_relay`) that tells the outbox's
/// trigger a relay in the writing process takes the rows, so no `NOTIFY` is
/// needed: the name and the value a service's pool connects with.
pub const IN_PROCESS: (&str, &str) = ("checkout.outbox_relay", "in_process");

/// A slot still pending after this long is left to the database: its
/// commit is stuck or lost, and the slots after it must not wait for it.
const PENDING_LIMIT: Duration = Duration::from_secs(5);

/// The relays taking handed rows in this process, by database.
static TAKERS: LazyLock<Mutex<HashMap<String, Weak<Shared>>>> = LazyLock::new(Mutex::default);

fn database_of(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or_default())
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<VecDeque<Arc<Slot>>>,
    /// Rung when a slot is filled or left to the database.
    ready: Notify,
    /// Some slot was left to the database since the relay last took: it
    /// must read the table.
    left: AtomicBool,
}

#[derive(Debug)]
struct Slot {
    registered: Instant,
    state: Mutex<SlotState>,
}

#[derive(Debug)]
enum SlotState {
    Pending(Vec<Uuid>),
    Committed(Vec<Row>),
    /// Abandoned by its transaction (a failed or cancelled commit, whose
    /// rows may or may not be committed), or given up on by the relay while
    /// pending: the database says.
    Left,
}

/// A relay's end: it takes what committing transactions hand over. One per
/// database and process; it stops taking when dropped.
#[derive(Debug)]
pub(super) struct Taker {
    shared: Arc<Shared>,
    database: String,
}

/// What the relay found in the queue.
#[derive(Debug, Default)]
pub(super) struct Handed {
    /// Committed rows, in registration order.
    pub rows: Vec<Row>,
    /// Whether some slot was left to the database: it must be read.
    pub read_database: bool,
}

impl Taker {
    /// Takes the rows committed through `pool`'s database in this process,
    /// unless another relay here already does.
    pub fn register(pool: &PgPool) -> Option<Self> {
        let database = database_of(pool);
        let mut takers = TAKERS.lock().unwrap_or_else(PoisonError::into_inner);
        if takers.get(&database).is_some_and(|taker| taker.strong_count() > 0) {
            return None;
        }
        let shared = Arc::new(Shared::default());
        takers.insert(database.clone(), Arc::downgrade(&shared));
        Some(Self { shared, database })
    }

    /// Waits until a slot is filled or left to the database.
    pub async fn ready(&self) {
        self.shared.ready.notified().await;
    }

    /// Takes the slots from the front of the queue up to the first one still
    /// pending (giving up on one pending for too long).
    pub fn take(&self) -> Handed {
        let mut handed = Handed::default();
        let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(front) = queue.front() {
            let mut state = front.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *state {
                SlotState::Pending(_) if front.registered.elapsed() < PENDING_LIMIT => break,
                SlotState::Pending(_) => {
                    *state = SlotState::Left;
                    handed.read_database = true;
                }
                SlotState::Committed(rows) => handed.rows.append(rows),
                SlotState::Left => {}
            }
            drop(state);
            queue.pop_front();
        }
        handed.read_database |= self.shared.left.swap(false, Ordering::AcqRel);
        handed
    }

    /// The message ids of the rows slots still hold: a read of the outbox
    /// leaves them out, since they are published from here.
    pub fn held_ids(&self) -> Vec<Uuid> {
        let queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ids = Vec::new();
        for slot in queue.iter() {
            match &*slot.state.lock().unwrap_or_else(PoisonError::into_inner) {
                SlotState::Pending(pending) => ids.extend_from_slice(pending),
                SlotState::Committed(rows) => ids.extend(rows.iter().map(|row| row.message_id)),
                SlotState::Left => {}
            }
        }
        ids
    }
}

impl Drop for Taker {
    fn drop(&mut self) {
        let mut takers = TAKERS.lock().unwrap_or_else(PoisonError::into_inner);
        if takers.get(&self.database).is_some_and(|taker| taker.as_ptr() == Arc::as_ptr(&self.shared)) {
            takers.remove(&self.database);
        }
    }
}

/// A committing transaction's place in its relay's queue. Dropped before
/// [`filled`](Self::filled) (a failed or cancelled commit), it is abandoned.
#[derive(Debug)]
pub(crate) struct Handoff {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
}

impl Handoff {
    /// Registers a slot for `rows` with the relay taking `pool`'s rows in
    /// this process; `None` when there is none (the database then says).
    pub fn register(pool: &PgPool, rows: &OutboxRows) -> Option<Self> {
        let shared = TAKERS.lock().unwrap_or_else(PoisonError::into_inner).get(&database_of(pool))?.upgrade()?;
        let slot =
            Arc::new(Slot { registered: Instant::now(), state: Mutex::new(SlotState::Pending(rows.ids.clone())) });
        shared.queue.lock().unwrap_or_else(PoisonError::into_inner).push_back(Arc::clone(&slot));
        Some(Self { shared, slot })
    }

    /// The transaction committed `rows`: the relay may publish them.
    pub fn filled(self, rows: OutboxRows) {
        self.settle(SlotState::Committed(rows_of(rows, time::OffsetDateTime::now_utc())));
    }

    /// Settles the slot, unless the relay gave up on it: then a read of the
    /// database finds whatever the transaction committed.
    fn settle(&self, settled: SlotState) {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, SlotState::Pending(_)) && !matches!(settled, SlotState::Left) {
            *state = settled;
        } else {
            *state = SlotState::Left;
            self.shared.left.store(true, Ordering::Release);
        }
        drop(state);
        self.shared.ready.notify_one();
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        let pending = matches!(*self.slot.state.lock().unwrap_or_else(PoisonError::into_inner), SlotState::Pending(_));
        if pending {
            self.settle(SlotState::Left);
        }
    }
}

/// The relay's rows for what a transaction committed at `committed_at`.
fn rows_of(rows: OutboxRows, committed_at: time::OffsetDateTime) -> Vec<Row> {
    let OutboxRows { ids, topics, keys, payloads, headers } = rows;
    ids.into_iter()
        .zip(topics)
        .zip(keys)
        .zip(payloads)
        .zip(headers)
        .map(|((((message_id, topic), message_key), payload), headers)| Row {
            position: None,
            message_id,
            topic: topic.to_owned(),
            message_key,
            payload,
            headers,
            created_at: committed_at,
        })
        .collect()
}
