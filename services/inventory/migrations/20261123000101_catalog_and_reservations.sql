-- The catalog and its stock. `on_hand` is what the warehouse holds;
-- `reserved` is the part of it held for orders not yet paid.
CREATE TABLE products (
    sku              TEXT PRIMARY KEY CHECK (sku ~ '^[A-Z0-9][A-Z0-9-]{0,31}$'),
    name             TEXT NOT NULL,
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    currency         CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    on_hand          INTEGER NOT NULL CHECK (on_hand >= 0),
    reserved         INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The last line of defence against overselling.
    CONSTRAINT reserved_within_on_hand CHECK (reserved <= on_hand)
);

-- One reservation per order: every line or none.
CREATE TABLE reservations (
    order_id         UUID PRIMARY KEY,
    status           TEXT NOT NULL CHECK (status IN ('held', 'rejected', 'released', 'expired', 'committed')),
    currency         CHAR(3),
    expires_at       TIMESTAMPTZ,
    rejection_code   TEXT,
    rejection_sku    TEXT,
    rejection_detail TEXT,
    -- Lineage for the events the inventory raises on its own (expiry): the
    -- conversation, the command that reserved, and the trace it ran in.
    correlation_id   UUID NOT NULL,
    reserved_by      UUID NOT NULL,
    traceparent      TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX reservations_expiring ON reservations (expires_at) WHERE status = 'held';

CREATE TABLE reservation_lines (
    order_id         UUID NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    sku              TEXT NOT NULL REFERENCES products (sku),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, sku)
);
