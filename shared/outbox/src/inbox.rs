use std::collections::HashSet;

use checkout_messages::{Envelope, Message};
use sqlx::PgConnection;

/// Whether a message is new to a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First delivery: apply its effects in this same transaction.
    First,
    /// Already processed: change nothing.
    Duplicate,
}

/// Exports `consumer`'s duplicate and write-conflict counters at zero, so
/// that a scrape shows them before the first one. Call it once when the consumer is made.
pub fn describe(consumer: &'static str) {
    metrics::counter!("checkout_inbox_duplicates_total", "consumer" => consumer).absolute(0);
    metrics::counter!("checkout_write_conflicts_total", "consumer" => consumer).absolute(0);
}

fn count_duplicate(consumer: &str) {
    metrics::counter!("checkout_inbox_duplicates_total", "consumer" => consumer.to_owned()).increment(1);
}

/// Records that `consumer` processed `envelope`, in the caller's transaction.
///
/// Call it first in a handler's transaction. If two deliveries of one message
/// race, the second waits on the first's row lock and then sees `Duplicate`.
pub async fn claim(
    conn: &mut PgConnection,
    consumer: &str,
    envelope: &Envelope<Message>,
) -> Result<Claim, sqlx::Error> {
    // One statement for one message or many: a claim is a batch of one.
    let claims = claim_all(conn, consumer, &[envelope]).await?;
    Ok(claims.into_iter().next().unwrap_or(Claim::Duplicate))
}

/// Claims a batch's messages for `consumer` in one statement: for each
/// envelope, in the order given, whether it is new. A message given twice is
/// new only the first time.
///
/// The rows are inserted in message-id order, so two batches claiming some
/// of the same messages (a redelivery racing its original) wait for each
/// other and never deadlock.
pub async fn claim_all(
    conn: &mut PgConnection,
    consumer: &str,
    envelopes: &[&Envelope<Message>],
) -> Result<Vec<Claim>, sqlx::Error> {
    let rows = InboxRows::of(envelopes);
    let inserted: HashSet<uuid::Uuid> = sqlx::query_scalar!(
        "INSERT INTO inbox_messages (consumer, message_id, message_type)
         SELECT $1, id, message_type FROM UNNEST($2::UUID[], $3::TEXT[]) WITH ORDINALITY AS m(id, message_type, n)
          ORDER BY n
         ON CONFLICT DO NOTHING
         RETURNING message_id",
        consumer,
        &rows.ids,
        &rows.types as &[&str],
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .collect();
    Ok(claims(consumer, envelopes, inserted))
}

/// A batch's inbox rows in message-id order, as [`claim_all`] inserts them,
/// for a consumer that claims them in a statement of its own (see
/// [`Apply::claim_and_prepare`](crate::Apply::claim_and_prepare)).
#[derive(Debug, Default)]
pub struct InboxRows {
    pub ids: Vec<uuid::Uuid>,
    pub types: Vec<&'static str>,
}

impl InboxRows {
    pub fn of(envelopes: &[&Envelope<Message>]) -> Self {
        let mut rows: Vec<_> = envelopes.iter().map(|envelope| row_of(envelope)).collect();
        rows.sort_by_key(|&(id, _)| id);
        let (ids, types) = rows.into_iter().unzip();
        Self { ids, types }
    }
}

/// One message's inbox row, (message id, message type), for a consumer that
/// claims it in a statement of its own.
pub fn row_of(envelope: &Envelope<Message>) -> (uuid::Uuid, &'static str) {
    (*envelope.id.as_uuid(), envelope.payload.message_type().name())
}

/// For each envelope, in the order given, whether it is new, from the ids
/// the inbox insert returned (`inserted`); a duplicate is logged and counted.
pub fn claims<S: std::hash::BuildHasher>(
    consumer: &str,
    envelopes: &[&Envelope<Message>],
    mut inserted: HashSet<uuid::Uuid, S>,
) -> Vec<Claim> {
    envelopes.iter().map(|envelope| claim_of(consumer, envelope, inserted.remove(envelope.id.as_uuid()))).collect()
}

/// For a consumer that claims one message in a statement of its own (an
/// `INSERT … ON CONFLICT DO NOTHING RETURNING` beside its state change, in
/// the transaction's first statement): whether it is new, from whether the
/// insert returned its row (or, for one that reads its inbox before it
/// claims in its write, whether the read found none); a duplicate is logged
/// and counted.
pub fn claim_of(consumer: &str, envelope: &Envelope<Message>, inserted: bool) -> Claim {
    if inserted {
        return Claim::First;
    }
    tracing::info!(message.id = %envelope.id, consumer, "duplicate message ignored");
    count_duplicate(consumer);
    Claim::Duplicate
}

/// For a consumer that reads its inbox in a statement of its own before it
/// calls out (as [`already_processed`] does): `seen`, with a duplicate counted.
pub fn seen_before(consumer: &str, seen: bool) -> bool {
    if seen {
        count_duplicate(consumer);
    }
    seen
}

/// Whether `consumer` has processed `envelope` already. A read-only check for
/// handlers that call out to other systems before claiming the message, so a
/// known duplicate never reaches the outside world twice.
pub async fn already_processed(
    executor: impl sqlx::PgExecutor<'_>,
    consumer: &str,
    envelope: &Envelope<Message>,
) -> Result<bool, sqlx::Error> {
    let seen = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM inbox_messages WHERE consumer = $1 AND message_id = $2) AS "seen!""#,
        consumer,
        envelope.id.as_uuid(),
    )
    .fetch_one(executor)
    .await?;
    Ok(seen_before(consumer, seen))
}
