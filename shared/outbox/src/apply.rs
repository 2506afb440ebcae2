//! Handlers whose every message is one state change in a [`UnitOfWork`]:
//! claimed in the inbox, applied, its replies sent, committed. Written once
//! here, so that a service gets both one transaction per message and one
//! transaction for a whole batch from the same `apply`.

use checkout_kafka::{HandlerError, Incoming};
use sqlx::PgPool;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::unit_of_work::transaction_span;
use crate::{Claim, UnitOfWork, claim, handler_error};

/// A consumer's logic for one message, inside a transaction it is given.
pub trait Apply: Send + Sync + 'static {
    /// What to do once the transaction has committed (count a metric, say);
    /// a rolled-back or retried transaction does nothing of it.
    type Committed: Committed;

    /// The consumer's name in the inbox.
    const CONSUMER: &'static str;

    fn pool(&self) -> &PgPool;

    /// Applies `message`, already claimed in `work`'s inbox, at `now`: the
    /// state change and the messages it sends (with [`UnitOfWork::send`]).
    /// An error rolls back the whole transaction.
    fn apply(
        &self,
        work: &mut UnitOfWork,
        message: &Incoming,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Self::Committed, HandlerError>> + Send;
}

/// Work left for after the commit.
pub trait Committed: Send {
    fn done(self);
}

impl Committed for () {
    fn done(self) {}
}

/// Handles one message in a transaction of its own; a duplicate changes nothing.
pub async fn apply_one<A: Apply>(handler: &A, message: &Incoming, now: OffsetDateTime) -> Result<(), HandlerError> {
    let Some(mut work) =
        UnitOfWork::claim(handler.pool(), A::CONSUMER, &message.envelope).await.map_err(handler_error)?
    else {
        return Ok(());
    };
    let committed = handler.apply(&mut work, message, now).await?;
    work.commit().await?;
    committed.done();
    Ok(())
}

/// Handles `messages` in order in one transaction: one commit (one WAL
/// flush) and one outbox insert for all, each message still claimed in the
/// inbox and applied in a transaction span of its own trace (so what it sends
/// continues its checkout's trace, as without batching). Any failure rolls all of it back; the
/// consumer runtime then handles each message on its own, so a bad one is
/// dead-lettered alone.
pub async fn apply_all<A: Apply>(handler: &A, messages: &[Incoming], now: OffsetDateTime) -> Result<(), HandlerError> {
    let mut work = UnitOfWork::begin(handler.pool()).await.map_err(handler_error)?;
    let mut committed = Vec::with_capacity(messages.len());
    for message in messages {
        // This message's part of the transaction, in the message's trace:
        // what it sends continues from there, as with a transaction of its own.
        let part = transaction_span(&message.span);
        let whole = work.replace_span(part.clone());
        let applied = async {
            match claim(work.conn(), A::CONSUMER, &message.envelope).await.map_err(handler_error)? {
                Claim::First => handler.apply(&mut work, message, now).await.map(Some),
                Claim::Duplicate => Ok(None),
            }
        }
        .instrument(part)
        .await;
        work.replace_span(whole);
        committed.extend(applied?);
    }
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
