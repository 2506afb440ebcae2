-- A row that can never be published (it names a topic this build does not
-- know) is set aside with its reason instead of stopping the relay at it.
ALTER TABLE outbox_messages
    ADD COLUMN quarantined_at TIMESTAMPTZ,
    ADD COLUMN quarantine_reason TEXT;

DROP INDEX outbox_messages_unpublished;
CREATE INDEX outbox_messages_unpublished ON outbox_messages (position)
    WHERE published_at IS NULL AND quarantined_at IS NULL;
