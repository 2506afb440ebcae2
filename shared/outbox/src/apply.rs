//! Handlers whose every message is one state change in a [`UnitOfWork`]:
//! claimed in the inbox, applied, its replies sent, committed. Written once
//! here, so that a service gets both one transaction per message and one
//! transaction for a whole batch from the same `apply`. A consumer may
//! instead open an autocommit unit of work ([`Apply::open`]): an unlocked
//! read and one guarded write, which lose a race as a whole and are done
//! again at once.

use checkout_kafka::{HandlerError, Incoming};
use sqlx::PgPool;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::classify::{count_conflict, is_conflict};
use crate::unit_of_work::transaction_span;
use crate::{Claim, UnitOfWork, claim_all, handler_error};

/// A consumer's logic for one message, inside a transaction it is given.
pub trait Apply: Send + Sync + 'static {
    /// What to do once the transaction has committed (count a metric, say);
    /// a rolled-back or retried transaction does nothing of it.
    type Committed: Committed;

    /// What the new messages of one transaction share: what
    /// [`prepare`](Self::prepare) reads for all of them before the first is
    /// applied, and what they leave for [`flush`](Self::flush) to write for
    /// all of them after the last. `()` when they share nothing.
    type Batch: Default + Send;

    /// The consumer's name in the inbox.
    const CONSUMER: &'static str;

    fn pool(&self) -> &PgPool;

    /// The unit of work the consumer's messages are applied in: a
    /// transaction by default. A consumer may open an
    /// [`autocommit`](UnitOfWork::autocommit) one instead: its
    /// `claim_and_prepare` then only reads (no lock, no claim), and its
    /// `flush` is its one write, claiming the new messages, saving the state
    /// and taking the outbox in one statement that fails whole (`40001`) if a
    /// message was claimed or the state changed since the read; `observe`
    /// must then write nothing.
    fn open(&self) -> impl Future<Output = Result<UnitOfWork, sqlx::Error>> + Send {
        UnitOfWork::begin(self.pool())
    }

    /// Reads, for all of `messages` (new to the inbox) at once, what applying
    /// them needs, before the first is applied. Nothing by default.
    fn prepare(
        &self,
        work: &mut UnitOfWork,
        messages: &[&Incoming],
    ) -> impl Future<Output = Result<Self::Batch, HandlerError>> + Send {
        let _ = (work, messages);
        async { Ok(Self::Batch::default()) }
    }

    /// Claims `messages` in the inbox and reads, for the new ones, what
    /// applying them needs: for each message, in the order given, whether it
    /// is new, and the batch [`prepare`](Self::prepare) would read. By
    /// default [`claim_all`] then `prepare` (two statements, none for the
    /// second when every message is a duplicate). A consumer may do both in
    /// one statement of its own ([`InboxRows`], [`claims`](crate::claims)):
    /// it must then insert the inbox rows in message-id order (as
    /// `InboxRows` has them) and before it locks anything else, as
    /// `claim_all` does, so that batches claiming the same messages never
    /// deadlock. It may read for duplicates too.
    ///
    /// [`InboxRows`]: crate::InboxRows
    fn claim_and_prepare(
        &self,
        work: &mut UnitOfWork,
        messages: &[&Incoming],
    ) -> impl Future<Output = Result<(Vec<Claim>, Self::Batch), HandlerError>> + Send {
        async move {
            let envelopes: Vec<_> = messages.iter().map(|message| &message.envelope).collect();
            let claims = claim_all(work.conn(), Self::CONSUMER, &envelopes).await.map_err(handler_error)?;
            let new: Vec<&Incoming> = messages
                .iter()
                .zip(&claims)
                .filter(|(_, claim)| **claim == Claim::First)
                .map(|(message, _)| *message)
                .collect();
            let batch = if new.is_empty() { Self::Batch::default() } else { self.prepare(work, &new).await? };
            Ok((claims, batch))
        }
    }

    /// Applies `message`, already claimed in `work`'s inbox, at `now`: the
    /// state change and the messages it sends (with [`UnitOfWork::send`]),
    /// reading what `prepare` read and leaving in `batch` what `flush`
    /// writes. An error rolls back the whole transaction.
    fn apply(
        &self,
        work: &mut UnitOfWork,
        batch: &mut Self::Batch,
        message: &Incoming,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Self::Committed, HandlerError>> + Send;

    /// Writes what the applied messages left in `batch`, after the last of
    /// them. Nothing by default.
    fn flush(
        &self,
        work: &mut UnitOfWork,
        batch: Self::Batch,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = (work, batch);
        async { Ok(()) }
    }

    /// What every delivery of the messages does, a duplicate's too, in the
    /// same transaction after they are applied (or found to be duplicates),
    /// all of a batch's at once, in the order they were applied: e.g. a fold
    /// that records how far it has read each partition, which a redelivery
    /// must move on as well. Nothing by default.
    fn observe(
        &self,
        work: &mut UnitOfWork,
        messages: &[&Incoming],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = (work, messages, now);
        async { Ok(()) }
    }
}

/// Work left for after the commit.
pub trait Committed: Send {
    fn done(self);
}

impl Committed for () {
    fn done(self) {}
}

/// How many times in a row a unit of work is redone at once because a
/// concurrent writer changed what it read; then the consumer's backoff takes
/// over. Conflicts come from replies to one saga arriving on several topics
/// together, so a few redos settle them.
const REDOS: u32 = 4;

/// Runs `attempt` again at once while it fails on a conflict (`40001`), at
/// most [`REDOS`] times: an optimistic write that lost a race reads again.
async fn redo_on_conflict<F: Future<Output = Result<(), HandlerError>>>(
    consumer: &'static str,
    mut attempt: impl FnMut() -> F,
) -> Result<(), HandlerError> {
    let mut redone = 0;
    loop {
        match attempt().await {
            Err(error) if redone < REDOS && is_conflict(&error) => {
                redone += 1;
                tracing::debug!(consumer, %error, redone, "what the write read changed meanwhile; applied again");
                count_conflict(consumer);
            }
            done => return done,
        }
    }
}

/// Handles one message in a unit of work of its own; a duplicate changes
/// nothing but what [`Apply::observe`] does.
pub async fn apply_one<A: Apply>(handler: &A, message: &Incoming, now: OffsetDateTime) -> Result<(), HandlerError> {
    redo_on_conflict(A::CONSUMER, || apply_one_once(handler, message, now)).await
}

async fn apply_one_once<A: Apply>(handler: &A, message: &Incoming, now: OffsetDateTime) -> Result<(), HandlerError> {
    let mut work = handler.open().await.map_err(handler_error)?;
    let (claims, mut batch) = handler.claim_and_prepare(&mut work, &[message]).await?;
    let applied = match claims.first() {
        Some(Claim::First) => {
            let applied = handler.apply(&mut work, &mut batch, message, now).await?;
            handler.flush(&mut work, batch).await?;
            Some(applied)
        }
        Some(Claim::Duplicate) | None => None,
    };
    handler.observe(&mut work, &[message], now).await?;
    work.commit().await?;
    applied.done();
    Ok(())
}

/// Handles `messages` in one transaction: [`Apply::claim_and_prepare`]
/// claims them all and reads for the new ones, each is applied in a
/// transaction span of its own trace (so what it sends continues its
/// checkout's trace, as without batching), [`Apply::flush`] writes what they
/// left, then [`Apply::observe`] sees them all; one outbox insert and one commit
/// (one WAL flush) follow. Any failure rolls all of it back; the consumer
/// runtime then handles each message on its own, so a bad one is
/// dead-lettered alone.
///
/// The messages are applied in the order of their keys (order ids), each
/// key's in the order given: every batch then locks the rows of its orders in
/// one global order, so batches running at once (from other partitions or
/// other topics) wait for each other but never deadlock. A deadlock would cost
/// a second (PostgreSQL's `deadlock_timeout`), then the whole batch.
pub async fn apply_all<A: Apply>(handler: &A, messages: &[Incoming], now: OffsetDateTime) -> Result<(), HandlerError> {
    redo_on_conflict(A::CONSUMER, || apply_all_once(handler, messages, now)).await
}

async fn apply_all_once<A: Apply>(handler: &A, messages: &[Incoming], now: OffsetDateTime) -> Result<(), HandlerError> {
    let mut ordered: Vec<&Incoming> = messages.iter().collect();
    // Stable: one key's messages keep their order.
    ordered.sort_by_key(|message| message.envelope.subject);
    let mut work = handler.open().await.map_err(handler_error)?;
    let (claims, mut batch) = handler.claim_and_prepare(&mut work, &ordered).await?;
    let new: Vec<&Incoming> =
        ordered.iter().zip(claims).filter(|(_, claim)| *claim == Claim::First).map(|(message, _)| *message).collect();
    let mut committed = Vec::with_capacity(new.len());
    if !new.is_empty() {
        for message in &new {
            // This message's part of the transaction, in the message's trace:
            // what it sends continues from there, as with a transaction of its own.
            let part = transaction_span(&message.span);
            let whole = work.replace_span(part.clone());
            let applied = handler.apply(&mut work, &mut batch, message, now).instrument(part).await;
            work.replace_span(whole);
            committed.push(applied?);
        }
        handler.flush(&mut work, batch).await?;
    }
    handler.observe(&mut work, &ordered, now).await?;
    work.commit().await?;
    committed.into_iter().for_each(Committed::done);
    Ok(())
}

impl<T: Committed> Committed for Option<T> {
    fn done(self) {
        if let Some(committed) = self {
            committed.done();
        }
    }
}
