use checkout_messages::{Envelope, Message};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::{Claim, OutboxError, claim, enqueue};

/// One transaction that records a state change and the messages it causes.
///
/// A consumer starts one with [`claim`](Self::claim), which also records the
/// incoming message in the inbox, so the effects happen at most once however
/// often the message is delivered; an HTTP handler starts one with
/// [`begin`](Self::begin). Messages passed to [`send`](Self::send) are written
/// to the outbox on [`commit`](Self::commit) and published after it.
#[derive(Debug)]
pub struct UnitOfWork {
    tx: Transaction<'static, Postgres>,
    outgoing: Vec<Envelope<Message>>,
}

impl UnitOfWork {
    pub async fn begin(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Ok(Self { tx: pool.begin().await?, outgoing: Vec::new() })
    }

    /// Begins, and claims `envelope` for `consumer`: `None` if it was processed before.
    pub async fn claim(
        pool: &PgPool,
        consumer: &str,
        envelope: &Envelope<Message>,
    ) -> Result<Option<Self>, sqlx::Error> {
        let mut work = Self::begin(pool).await?;
        match claim(&mut work.tx, consumer, envelope).await? {
            Claim::First => Ok(Some(work)),
            Claim::Duplicate => Ok(None),
        }
    }

    /// The transaction's connection, for the state change.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Sends `envelope` if, and only if, the transaction commits.
    pub fn send(&mut self, envelope: Envelope<Message>) {
        self.outgoing.push(envelope);
    }

    pub async fn commit(mut self) -> Result<(), OutboxError> {
        for envelope in &self.outgoing {
            enqueue(&mut self.tx, envelope).await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}
