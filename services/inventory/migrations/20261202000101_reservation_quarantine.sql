-- A reservation the expiry sweep cannot release (its lines and the stock
-- disagree) is set aside with the reason, so the sweep goes on with the rest.
ALTER TABLE reservations
    ADD COLUMN quarantined_at TIMESTAMPTZ,
    ADD COLUMN quarantine_reason TEXT;
