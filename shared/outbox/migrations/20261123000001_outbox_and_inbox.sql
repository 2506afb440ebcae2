-- Messages a service has decided to send, written in the same transaction as
-- the state change that produced them, and published by the relay.
CREATE TABLE outbox_messages (
    -- Insertion order; the relay publishes in this order. Writers of one key
    -- lock that key's aggregate row first, so per key it is also commit order.
    position     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   UUID NOT NULL UNIQUE,
    -- Logical topic (e.g. inventory.commands); the relay adds any deployment prefix.
    topic        TEXT NOT NULL,
    message_key  TEXT NOT NULL,
    payload      BYTEA NOT NULL,
    -- Record headers, including the trace context of the writing transaction.
    headers      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);

CREATE INDEX outbox_messages_unpublished ON outbox_messages (position) WHERE published_at IS NULL;
CREATE INDEX outbox_messages_published ON outbox_messages (published_at) WHERE published_at IS NOT NULL;

-- Wakes the relay as soon as a writing transaction commits (notifications are
-- delivered at commit), so publishing adds no polling delay.
CREATE FUNCTION outbox_messages_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_messages', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_messages_notify
    AFTER INSERT ON outbox_messages
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_messages_notify();

-- Messages a consumer has processed, written in the handler's transaction, so
-- a redelivered message is recognised and changes nothing.
CREATE TABLE inbox_messages (
    consumer     TEXT NOT NULL,
    message_id   UUID NOT NULL,
    message_type TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE INDEX inbox_messages_processed_at ON inbox_messages (processed_at);
