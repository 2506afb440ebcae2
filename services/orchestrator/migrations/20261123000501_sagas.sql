-- One saga per order: its full state, and what the timer and queries need.
CREATE TABLE sagas (
    order_id        UUID PRIMARY KEY,
    status          TEXT NOT NULL CHECK (status IN ('running', 'compensating', 'completed', 'cancelled', 'needs_attention')),
    current_step    TEXT,
    -- When the step waiting for a reply times out; NULL once finished.
    deadline        TIMESTAMPTZ,
    state           JSONB NOT NULL,
    -- Lineage for commands the timer sends: the conversation, the last
    -- message applied, and the trace it was handled in.
    correlation_id  UUID NOT NULL,
    last_message_id UUID NOT NULL,
    traceparent     TEXT,
    -- The span that reported the failure a compensation answers; every
    -- compensation step's span links to it.
    failure_traceparent TEXT,
    started_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX sagas_due ON sagas (deadline) WHERE deadline IS NOT NULL;
CREATE INDEX sagas_by_status ON sagas (status, updated_at);

-- Every input a saga received and what it did, in order.
CREATE TABLE saga_transitions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    UUID NOT NULL REFERENCES sagas (order_id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL,
    input       TEXT NOT NULL,
    message_id  UUID,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    step        TEXT,
    commands    TEXT[] NOT NULL,
    ignored     TEXT
);

CREATE INDEX saga_transitions_by_order ON saga_transitions (order_id, id);
