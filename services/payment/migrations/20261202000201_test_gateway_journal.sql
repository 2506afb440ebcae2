-- The test gateway's journal of the calls it received, by idempotency key:
-- what a real gateway keeps on its side. `calls` above 1 means a call was
-- repeated (after a crash or a redelivery) and answered without acting twice.
CREATE TABLE test_gateway_calls (
    idempotency_key TEXT PRIMARY KEY,
    operation       TEXT NOT NULL CHECK (operation IN ('authorize', 'capture', 'void', 'refund')),
    calls           INTEGER NOT NULL DEFAULT 1,
    first_called_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_called_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The key each gateway call was made with, next to the operation's outcome.
ALTER TABLE payment_operations ADD COLUMN idempotency_key TEXT;
