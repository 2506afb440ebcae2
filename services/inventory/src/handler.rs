use std::time::Duration;

use checkout_domain::{OrderId, OrderLines};
use checkout_kafka::{Handler, HandlerError, Incoming, RecordHeaders};
use checkout_messages::payloads::inventory::{
    InventoryCommitRejected, InventoryCommitted, InventoryReleased, InventoryReservationRejected, InventoryReserved,
    RejectionCode,
};
use checkout_messages::{Envelope, Message, Source};
use checkout_outbox::{Claim, Settled, UnitOfWork, caused_by, claim_of, handler_error, row_of};
use checkout_platform::clock;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::pricing::price;
use crate::store::{self, Lineage, Status, StoreError};

/// The inventory's name in the inbox.
const CONSUMER: &str = "inventory";

/// Handles `ReserveInventory`, `ReleaseInventory` and `CommitInventory`.
#[derive(Debug, Clone)]
pub struct InventoryHandler {
    pool: PgPool,
    reservation_ttl: Duration,
    source: Source,
}

impl InventoryHandler {
    pub fn new(pool: PgPool, reservation_ttl: Duration) -> Self {
        checkout_outbox::inbox::describe(CONSUMER);
        Self { pool, reservation_ttl, source: Source::service("inventory") }
    }
}

impl Handler for InventoryHandler {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let envelope = &message.envelope;
        if !matches!(
            envelope.payload,
            Message::ReserveInventory(_) | Message::ReleaseInventory(_) | Message::CommitInventory(_)
        ) {
            let kind = envelope.payload.message_type();
            return Err(HandlerError::permanent(format!("{kind} is not an inventory command")));
        }
        if matches!(envelope.payload, Message::CommitInventory(_)) && self.commit_unlocked(envelope).await? {
            return Ok(());
        }
        let mut work = UnitOfWork::begin(&self.pool).await.map_err(handler_error)?;
        let command = row_of(envelope);
        let (claimed, existing) = store::claim_and_find(work.conn(), CONSUMER, command, envelope.subject).await?;
        if claim_of(CONSUMER, envelope, claimed) == Claim::Duplicate {
            return Ok(());
        }
        let now = clock::now();
        let reply = match &envelope.payload {
            Message::ReserveInventory(command) => {
                self.reserve(work.conn(), envelope, &command.lines, existing, now).await?
            }
            Message::CommitInventory(_) => commit(work.conn(), envelope.subject, existing).await?,
            _ => release(work.conn(), envelope, existing).await?,
        };
        tracing::info!(reply = %reply.message_type(), "inventory command handled");
        work.send(caused_by(envelope, &self.source, now, reply));
        work.commit().await.map_err(handler_error)
    }
}

impl InventoryHandler {
    /// Commits a held reservation in one statement that commits on its own
    /// (see [`store::claim_and_commit_held`]). False when the reservation is
    /// not held: the command is then handled under the reservation's lock.
    async fn commit_unlocked(&self, envelope: &Envelope<Message>) -> Result<bool, HandlerError> {
        let mut work = UnitOfWork::autocommit(&self.pool).await.map_err(handler_error)?;
        let reply = Message::from(InventoryCommitted {});
        let replied = reply.message_type();
        work.send(caused_by(envelope, &self.source, clock::now(), reply));
        let outbox = work.take_outbox().map_err(handler_error)?;
        let claimed =
            store::claim_and_commit_held(work.conn(), CONSUMER, row_of(envelope), envelope.subject, &outbox).await;
        match work.settle(CONSUMER, envelope, claimed).await? {
            Settled::Committed => {
                tracing::info!(reply = %replied, "inventory command handled");
                Ok(true)
            }
            Settled::Duplicate => Ok(true),
            Settled::Conflict => Ok(false),
        }
    }

    async fn reserve(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope<Message>,
        lines: &OrderLines,
        existing: Option<store::Reservation>,
        now: OffsetDateTime,
    ) -> Result<Message, StoreError> {
        let order = envelope.subject;
        if let Some(existing) = existing {
            return answer_again(conn, order, lines, &existing).await;
        }
        let skus: Vec<String> = lines.iter().map(|line| line.sku.to_string()).collect();
        let stock = store::lock_stock(conn, &skus).await?;
        let lineage = Lineage { cause: envelope, traceparent: RecordHeaders::current_traceparent() };
        match price(lines, &stock) {
            Ok(pricing) => {
                let expires_at = now + self.reservation_ttl;
                if store::insert_held(conn, order, &pricing, expires_at, &lineage).await? {
                    Ok(InventoryReserved { pricing, expires_at }.into())
                } else {
                    // A concurrent delivery reserved first; answer as it did.
                    let existing = store::find_reservation(conn, order).await?;
                    let existing = existing.ok_or_else(|| store::corrupt("reservation vanished"))?;
                    answer_again(conn, order, lines, &existing).await
                }
            }
            Err(rejection) => {
                tracing::info!(%rejection, "reservation rejected");
                store::insert_rejected(conn, order, &rejection, &lineage).await?;
                let sku = rejection.sku().clone();
                Ok(InventoryReservationRejected { code: rejection.code(), sku, detail: rejection.to_string() }.into())
            }
        }
    }
}

/// The answer to a repeated reservation request: the same as the first time.
async fn answer_again(
    conn: &mut PgConnection,
    order: OrderId,
    lines: &OrderLines,
    existing: &store::Reservation,
) -> Result<Message, StoreError> {
    Ok(match (existing.status, &existing.rejection) {
        (Status::Held | Status::Committed, _) => {
            let pricing = store::reserved_pricing(conn, order).await?;
            let expires_at = existing.expires_at.unwrap_or_else(OffsetDateTime::now_utc);
            InventoryReserved { pricing, expires_at }.into()
        }
        (Status::Rejected, Some((code, sku, detail))) => {
            InventoryReservationRejected { code: *code, sku: sku.clone(), detail: detail.clone() }.into()
        }
        _ => InventoryReservationRejected {
            code: RejectionCode::Other,
            sku: lines.first().sku.clone(),
            detail: "this order's reservation was already released".into(),
        }
        .into(),
    })
}

async fn release(
    conn: &mut PgConnection,
    envelope: &Envelope<Message>,
    existing: Option<store::Reservation>,
) -> Result<Message, StoreError> {
    let order = envelope.subject;
    match existing {
        Some(existing) if existing.status == Status::Held => store::release(conn, order, Status::Released).await?,
        // Committed before the pivot and the saga was compensated: the
        // stock never left, so it goes back on the shelf.
        Some(existing) if existing.status == Status::Committed => store::restock(conn, order).await?,
        Some(_) => {}
        // Nothing was reserved: make sure a late reservation request is refused.
        None => {
            let lineage = Lineage { cause: envelope, traceparent: None };
            store::insert_released(conn, order, &lineage).await?;
        }
    }
    Ok(InventoryReleased {}.into())
}

async fn commit(
    conn: &mut PgConnection,
    order: OrderId,
    existing: Option<store::Reservation>,
) -> Result<Message, StoreError> {
    let status = existing.map(|r| r.status);
    Ok(match status {
        Some(Status::Held) => {
            store::commit_held(conn, order).await?;
            InventoryCommitted {}.into()
        }
        Some(Status::Committed) => InventoryCommitted {}.into(),
        // The hold ran out, but the stock may still be there.
        Some(Status::Expired) => match store::commit_expired(conn, order).await? {
            None => InventoryCommitted {}.into(),
            Some(sku) => {
                InventoryCommitRejected { detail: format!("the reservation expired and {sku} is no longer in stock") }
                    .into()
            }
        },
        Some(Status::Rejected | Status::Released) | None => {
            InventoryCommitRejected { detail: "there is no reservation to commit for this order".into() }.into()
        }
    })
}
