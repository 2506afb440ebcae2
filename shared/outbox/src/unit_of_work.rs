use checkout_kafka::HandlerError;
use checkout_messages::{Envelope, Message};
use opentelemetry::trace::TraceContextExt;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::classify::{count_conflict, is_conflict};
use crate::relay::Handoff;
use crate::writer::{OutboxRows, insert};
use crate::{Claim, OutboxError, claim, claim_of};

/// One transaction that records a state change and the messages it causes.
///
/// A consumer starts one with [`claim`](Self::claim), which also records the
/// incoming message in the inbox, so the effects happen at most once however
/// often the message is delivered; an HTTP handler starts one with
/// [`begin`](Self::begin). Messages passed to [`send`](Self::send) are written
/// to the outbox on [`commit`](Self::commit) and published after it.
///
/// The transaction is traced as a span from begin to commit. A message sent in
/// the trace the transaction belongs to continues from the transaction's span,
/// so its publish and processing descend from the transaction that wrote it.
/// A message sent under a span of another trace (a timer waking many sagas in
/// one transaction) continues that span instead: it belongs to its checkout.
/// A batch ([`crate::apply_all`]) gives each message's part of the
/// transaction a transaction span in that message's trace.
///
/// An [`autocommit`](Self::autocommit) unit of work is the optimistic form:
/// no transaction, each statement commits on its own, and the caller's one
/// write (its state, its inbox rows and the outbox rows it
/// [takes](Self::take_outbox), guarded against changes since it read them)
/// is the commit.
#[derive(Debug)]
pub struct UnitOfWork {
    conn: Connection,
    outgoing: Vec<(Envelope<Message>, opentelemetry::Context)>,
    /// Messages handed to the caller's own statement by [`take_outbox`](Self::take_outbox).
    taken: OutboxRows,
    span: tracing::Span,
    /// Whose relay is handed the rows at commit.
    pool: PgPool,
}

#[derive(Debug)]
enum Connection {
    Transaction(Transaction<'static, Postgres>),
    /// Statements commit one by one; `handoff` holds the relay's slot for
    /// the rows taken, registered before the write that commits them.
    Autocommit {
        conn: PoolConnection<Postgres>,
        handoff: Option<Handoff>,
    },
}

/// How [`UnitOfWork::settle`] ended an autocommit unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The message was claimed and its write committed.
    Committed,
    /// Another delivery had claimed it: nothing was written.
    Duplicate,
    /// What the write was decided from changed: nothing was written.
    Conflict,
}

/// The span of a transaction (or of one message's part of a batch's), a child of `parent`.
pub(crate) fn transaction_span(parent: &tracing::Span) -> tracing::Span {
    tracing::info_span!(
        parent: parent,
        "db.transaction",
        otel.name = "postgresql transaction",
        otel.kind = "client",
        otel.status_code = Empty,
        db.system.name = "postgresql",
        db.operation.name = "transaction",
        outbox.messages = Empty,
    )
}

impl UnitOfWork {
    pub async fn begin(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let span = transaction_span(&tracing::Span::current());
        let tx = pool.begin().instrument(span.clone()).await?;
        Ok(Self::of(Connection::Transaction(tx), span, pool))
    }

    /// An optimistic unit of work: no `BEGIN`, no `COMMIT`, no lock held
    /// while the caller decides. The caller reads without locking, then
    /// writes everything in one statement that takes the outbox rows
    /// ([`take_outbox`](Self::take_outbox), once) and fails, whole, if what it
    /// read has changed meanwhile (a serialization failure, `40001`, which is
    /// transient: the caller reads again). Two round trips instead of four.
    pub async fn autocommit(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let span = transaction_span(&tracing::Span::current());
        let conn = pool.acquire().instrument(span.clone()).await?;
        Ok(Self::of(Connection::Autocommit { conn, handoff: None }, span, pool))
    }

    fn of(conn: Connection, span: tracing::Span, pool: &PgPool) -> Self {
        Self { conn, outgoing: Vec::new(), taken: OutboxRows::default(), span, pool: pool.clone() }
    }

    /// Makes `span` the transaction's span for what follows, and gives back
    /// the one it replaces. A batch gives each message's part a span of its
    /// own in the message's trace, so that what the part sends continues it.
    pub(crate) fn replace_span(&mut self, span: tracing::Span) -> tracing::Span {
        std::mem::replace(&mut self.span, span)
    }

    /// Begins, and claims `envelope` for `consumer`: `None` if it was processed before.
    pub async fn claim(
        pool: &PgPool,
        consumer: &str,
        envelope: &Envelope<Message>,
    ) -> Result<Option<Self>, sqlx::Error> {
        let mut work = Self::begin(pool).await?;
        match claim(work.conn(), consumer, envelope).await? {
            Claim::First => Ok(Some(work)),
            Claim::Duplicate => Ok(None),
        }
    }

    /// The transaction's connection, for the state change.
    pub fn conn(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            Connection::Transaction(tx) => tx,
            Connection::Autocommit { conn, .. } => conn,
        }
    }

    /// Sends `envelope` if, and only if, the transaction commits.
    pub fn send(&mut self, envelope: Envelope<Message>) {
        let current = tracing::Span::current().context();
        let transaction = self.span.context();
        let same_trace = current.span().span_context().trace_id() == transaction.span().span_context().trace_id();
        self.outgoing.push((envelope, if same_trace { transaction } else { current }));
    }

    /// The messages sent so far, encoded as outbox rows, for the caller to
    /// insert in its own statement (a data-modifying CTE beside its state
    /// change) rather than in one of their own at commit: a round trip less
    /// per transaction. The caller must write them in this transaction; what
    /// is sent afterwards is written at commit as usual.
    ///
    /// In an [`autocommit`](Self::autocommit) unit of work the caller's
    /// statement that writes the rows commits them, so they are registered
    /// with the relay here, before it; the outbox may be taken once, and
    /// nothing may be sent afterwards. That statement must write every row
    /// taken or fail: a unit of work whose write wrote none of them (a
    /// duplicate found by its claim) is dropped, not committed, and the
    /// relay reads the table instead.
    pub fn take_outbox(&mut self) -> Result<OutboxRows, OutboxError> {
        let rows = OutboxRows::encode(&self.outgoing)?;
        self.outgoing.clear();
        if let Connection::Autocommit { handoff, .. } = &mut self.conn {
            if handoff.is_some() || !self.taken.is_empty() {
                return Err(OutboxError::Autocommit("the outbox was taken twice"));
            }
            if !rows.is_empty() {
                *handoff = Handoff::register(&self.pool, &rows);
            }
        }
        self.taken.append(rows.clone());
        Ok(rows)
    }

    /// Writes what is still to write of the outbox and commits. A relay
    /// running in this process is handed the rows (registered before the
    /// commit, so that it publishes them in commit order) and publishes
    /// them without reading them back.
    ///
    /// An [`autocommit`](Self::autocommit) unit of work has committed
    /// already: this hands the relay the rows its write took.
    pub async fn commit(self) -> Result<(), OutboxError> {
        let Self { conn, outgoing, mut taken, span, pool } = self;
        span.record("outbox.messages", taken.len() + outgoing.len());
        let mut tx = match conn {
            Connection::Transaction(tx) => tx,
            Connection::Autocommit { handoff, .. } => {
                if !outgoing.is_empty() {
                    span.record("otel.status_code", "ERROR");
                    return Err(OutboxError::Autocommit("messages were sent after the write"));
                }
                if let Some(handoff) = handoff {
                    handoff.filled(taken);
                }
                return Ok(());
            }
        };
        let committed = async {
            let rows = OutboxRows::encode(&outgoing)?;
            insert(&mut tx, &rows).await?;
            taken.append(rows);
            let handoff = if taken.is_empty() { None } else { Handoff::register(&pool, &taken) };
            tx.commit().await?;
            if let Some(handoff) = handoff {
                handoff.filled(taken);
            }
            Ok(())
        }
        .instrument(span.clone())
        .await;
        if committed.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        committed
    }

    /// Ends an autocommit unit of work after its one write, which claimed
    /// `envelope` (`claimed`: true) or found it claimed by another delivery:
    /// commits the former (the relay is handed the outbox rows) and drops
    /// the latter as a duplicate. A write that failed on a conflict (`40001`:
    /// what it decided from has changed) is counted and returned, for the
    /// caller to handle the message under a lock instead.
    pub async fn settle<E: Into<HandlerError>>(
        self,
        consumer: &'static str,
        envelope: &Envelope<Message>,
        claimed: Result<bool, E>,
    ) -> Result<Settled, HandlerError> {
        match claimed {
            Ok(true) => {
                self.commit().await?;
                Ok(Settled::Committed)
            }
            Ok(false) => {
                claim_of(consumer, envelope, false);
                Ok(Settled::Duplicate)
            }
            Err(error) => {
                let error = error.into();
                if !is_conflict(&error) {
                    return Err(error);
                }
                tracing::debug!(%error, consumer, "what the write was decided from changed; handled under a lock");
                count_conflict(consumer);
                Ok(Settled::Conflict)
            }
        }
    }
}
