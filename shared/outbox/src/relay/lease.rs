//! A relay's hold on its database's outbox, and every statement it runs
//! there while holding it.
//!
//! The hold is a session advisory lock on a connection of its own, outside
//! the pool (returned to the pool, a connection would keep the lock for
//! whoever borrowed it next), kept for as long as that connection lives.
//!
//! The lease also remembers the rows it published and has not marked yet.
//! Marking them is a write, so a commit and a WAL flush; done after every
//! pass it was about a third of the commits of a checkout. So the running
//! relay marks what it published at most every `mark_interval` (or once a
//! batch's worth waits), and leaves the rows it remembers out of its reads
//! meanwhile. A crash before the mark republishes them: duplicates, which the
//! consumers' inboxes absorb, never a loss, as with a crash between publish
//! and mark before.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::RELAY_LOCK;

/// One row to publish.
#[derive(Debug)]
pub(super) struct Row {
    /// Known for a row read from the database; a row handed over by its
    /// transaction has none.
    pub position: Option<i64>,
    pub message_id: Uuid,
    pub topic: String,
    pub message_key: String,
    pub payload: Vec<u8>,
    pub headers: serde_json::Value,
    pub created_at: time::OffsetDateTime,
}

#[derive(Debug, Default)]
pub(super) struct Lease {
    conn: Option<PgConnection>,
    held: bool,
    /// Published, acknowledged and not marked yet (by message id), and
    /// since when the oldest of them waits.
    unmarked: Vec<Uuid>,
    unmarked_since: Option<Instant>,
}

/// When a pass marks what it published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Marking {
    /// Now, with everything published before it.
    Now,
    /// When the oldest unmarked row has waited `mark_interval`, or a batch's
    /// worth waits.
    WhenDue { interval: Duration, batch: usize },
    /// Never: the pass behaves as if the process died before the mark.
    #[cfg(feature = "fault-injection")]
    Never,
}

/// A lease that holds the lock: the statements of a pass.
pub(super) struct Held<'a> {
    conn: &'a mut PgConnection,
    unmarked: &'a mut Vec<Uuid>,
    unmarked_since: &'a mut Option<Instant>,
}

impl Lease {
    /// The lease, once it holds the outbox lock (taking it if it is free);
    /// `None` while another relay holds it. A lease that does not hold it
    /// tries again on every call, on the same connection.
    ///
    /// The lock is taken in a statement of its own before anything is read:
    /// the previous holder's last mark committed before its lock was released,
    /// so every read after the lock is taken sees it.
    pub async fn hold(&mut self, pool: &PgPool) -> Result<Option<Held<'_>>, sqlx::Error> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty @ None => empty.insert(PgConnection::connect_with(&pool.connect_options()).await?),
        };
        if !self.held {
            self.held = sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, RELAY_LOCK)
                .fetch_one(&mut *conn)
                .await?;
            if self.held {
                tracing::info!("this relay now publishes the outbox");
            }
        }
        Ok(self.held())
    }

    /// The statements of a pass, while the lease holds the lock.
    fn held(&mut self) -> Option<Held<'_>> {
        match (&mut self.conn, self.held) {
            (Some(conn), true) => {
                Some(Held { conn, unmarked: &mut self.unmarked, unmarked_since: &mut self.unmarked_since })
            }
            _ => None,
        }
    }

    /// How long until the oldest unmarked row is due to be marked; `None`
    /// when none waits.
    pub fn marks_due_in(&self, interval: Duration) -> Option<Duration> {
        due_in(self.unmarked_since.as_ref(), interval)
    }

    /// Marks what this lease published and has not marked yet.
    pub async fn mark(&mut self) -> Result<(), sqlx::Error> {
        match self.held() {
            Some(mut held) => held.mark().await,
            None => Ok(()),
        }
    }

    /// Tells whichever relay holds the lease that rows were committed: the
    /// `NOTIFY` the writers' trigger left to this process's relay.
    pub async fn announce(&mut self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty @ None => empty.insert(PgConnection::connect_with(&pool.connect_options()).await?),
        };
        sqlx::query!("SELECT pg_notify($1, '')", super::CHANNEL).execute(conn).await?;
        Ok(())
    }

    /// Gives the lease up after a database error: the connection may be
    /// broken and the lock gone with it. Closing it gives the lock back if
    /// it is still held; what was published and not marked is published
    /// again by whoever holds the lease next (this relay, on its next pass,
    /// included).
    pub async fn give_up(&mut self) {
        if let Some(conn) = std::mem::take(self).conn {
            let _ = conn.close().await;
        }
    }
}

fn due_in(since: Option<&Instant>, interval: Duration) -> Option<Duration> {
    since.map(|since| interval.saturating_sub(since.elapsed()))
}

impl Held<'_> {
    /// The next rows to publish, in position order: neither published nor
    /// set aside, nor published by this lease and waiting to be marked, nor
    /// among `handed` (rows their transactions hand to this relay).
    pub async fn next_batch(&mut self, limit: i64, handed: &[Uuid]) -> Result<Vec<Row>, sqlx::Error> {
        sqlx::query_as!(
            Row,
            r#"SELECT position AS "position?", message_id, topic, message_key, payload, headers, created_at
             FROM outbox_messages
             WHERE published_at IS NULL AND quarantined_at IS NULL
               AND message_id <> ALL($2) AND message_id <> ALL($3)
             ORDER BY position LIMIT $1"#,
            limit,
            &*self.unmarked,
            handed,
        )
        .fetch_all(&mut *self.conn)
        .await
    }

    /// Whether this lease published the row of `message_id` and has not
    /// marked it yet: a read of the database that raced a handover found it.
    pub fn unmarked(&self, message_id: Uuid) -> bool {
        self.unmarked.contains(&message_id)
    }

    /// Sets a row that can never be published aside, with the reason.
    pub async fn quarantine(&mut self, message_id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE outbox_messages SET quarantined_at = now(), quarantine_reason = $2 WHERE message_id = $1",
            message_id,
            reason,
        )
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Remembers the rows of `message_ids` as published, and marks
    /// everything published when `marking` says so.
    pub async fn published(&mut self, message_ids: Vec<Uuid>, marking: Marking) -> Result<(), sqlx::Error> {
        #[cfg(feature = "fault-injection")]
        if marking == Marking::Never {
            return Ok(());
        }
        if !message_ids.is_empty() {
            self.unmarked_since.get_or_insert_with(Instant::now);
            self.unmarked.extend(message_ids);
        }
        let due = match marking {
            Marking::Now => true,
            Marking::WhenDue { interval, batch } => {
                self.unmarked.len() >= batch || due_in(self.unmarked_since.as_ref(), interval) == Some(Duration::ZERO)
            }
            #[cfg(feature = "fault-injection")]
            Marking::Never => false,
        };
        if due { self.mark().await } else { Ok(()) }
    }

    /// Marks every row this lease published and has not marked, in one
    /// statement, by deleting it: the broker holds the record now, and a
    /// deleted row costs the database no new row version and no index
    /// entries, where setting `published_at` rewrote the row (payload and
    /// all) and added an entry to each of its indexes.
    async fn mark(&mut self) -> Result<(), sqlx::Error> {
        if self.unmarked.is_empty() {
            return Ok(());
        }
        sqlx::query!("DELETE FROM outbox_messages WHERE message_id = ANY($1)", &*self.unmarked)
            .execute(&mut *self.conn)
            .await?;
        self.unmarked.clear();
        *self.unmarked_since = None;
        Ok(())
    }
}
