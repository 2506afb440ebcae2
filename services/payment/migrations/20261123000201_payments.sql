-- One payment per order, and its state at the gateway as far as we know it.
CREATE TABLE payments (
    order_id         UUID PRIMARY KEY,
    -- 'authorizing': the gateway was asked and has not answered (yet).
    status           TEXT NOT NULL CHECK (status IN ('authorizing', 'authorized', 'declined', 'voided', 'captured', 'refunded')),
    amount_minor     BIGINT CHECK (amount_minor >= 0),
    currency         CHAR(3),
    authorization_id TEXT,
    decline_code     TEXT,
    decline_detail   TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every call to the gateway and what came of it: the payment's audit trail.
CREATE TABLE payment_operations (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     UUID NOT NULL,
    operation    TEXT NOT NULL CHECK (operation IN ('authorize', 'capture', 'void', 'refund')),
    outcome      TEXT NOT NULL,
    amount_minor BIGINT,
    currency     CHAR(3),
    detail       TEXT,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX payment_operations_by_order ON payment_operations (order_id, id);
