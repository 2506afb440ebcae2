CREATE TABLE orders (
    order_id            UUID PRIMARY KEY,
    customer_id         TEXT NOT NULL,
    email               TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    cancellation_code   TEXT,
    cancellation_detail TEXT,
    -- Known once the inventory has priced the lines.
    total_minor         BIGINT CHECK (total_minor >= 0),
    currency            CHAR(3),
    -- The trace of the request that placed the order, to find it in Jaeger.
    trace_id            TEXT,
    -- A client's retry key, and a fingerprint of the request it came with.
    idempotency_key     TEXT UNIQUE,
    request_fingerprint TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE order_lines (
    order_id         UUID NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    sku              TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- The saga's progress for the order, as the orchestrator reports it.
CREATE TABLE order_timeline (
    message_id UUID PRIMARY KEY,
    order_id   UUID NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    step       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    detail     TEXT,
    at         TIMESTAMPTZ NOT NULL
);

CREATE INDEX order_timeline_by_order ON order_timeline (order_id, at);
