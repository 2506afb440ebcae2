-- A saga row that cannot be decoded (written by a newer build, or damaged) is
-- set aside with its reason, so the timer goes on with the others.
ALTER TABLE sagas
    ADD COLUMN quarantined_at TIMESTAMPTZ,
    ADD COLUMN quarantine_reason TEXT;
