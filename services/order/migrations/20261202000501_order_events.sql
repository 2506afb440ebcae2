-- An order is the stream of its events. `orders` keeps what identifies a
-- checkout (its idempotency key and request fingerprint) and the stream's
-- head: the last sequence number, and the time of the last event, so that
-- event times strictly increase per order. Everything else is folded from
-- `order_events`.
CREATE TABLE order_events (
    order_id       UUID NOT NULL REFERENCES orders (order_id),
    seq            BIGINT NOT NULL CHECK (seq > 0),
    event_id       UUID NOT NULL UNIQUE,
    event_type     TEXT NOT NULL,
    -- The major version of the event's shape.
    schema_version INTEGER NOT NULL,
    data           JSONB NOT NULL,
    -- The database's clock when appended.
    at             TIMESTAMPTZ NOT NULL,
    -- The message that caused the change; NULL for a customer's request.
    causation_id   UUID,
    correlation_id UUID NOT NULL,
    PRIMARY KEY (order_id, seq)
);

ALTER TABLE orders
    ADD COLUMN version BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_event_at TIMESTAMPTZ;

-- Orders stored before the event stream become streams of the same events:
-- placed, the saga's reports, priced, then confirmed or cancelled. Their
-- conversation id was not kept, so the order id stands in for it.
WITH history AS (
    SELECT o.order_id, 0 AS rank, o.created_at AS at, 'OrderPlaced' AS event_type,
           jsonb_strip_nulls(jsonb_build_object(
               'customer_id', o.customer_id,
               'email', o.email,
               'lines', (SELECT jsonb_agg(jsonb_build_object('sku', l.sku, 'quantity', l.quantity) ORDER BY l.line_no)
                           FROM order_lines l WHERE l.order_id = o.order_id),
               'trace_id', o.trace_id)) AS data
      FROM orders o
    UNION ALL
    SELECT t.order_id, 1, min(t.at), 'SagaStepsRecorded',
           jsonb_build_object(
               'entries', jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                   'step', t.step, 'outcome', t.outcome, 'attempt', t.attempt, 'detail', t.detail)) ORDER BY t.entry),
               'reported_at', to_jsonb(min(t.at)))
      FROM order_timeline t GROUP BY t.order_id, t.message_id
    UNION ALL
    SELECT o.order_id, 2, o.updated_at, 'OrderPriced',
           jsonb_build_object('pricing', jsonb_build_object(
               'lines', (SELECT jsonb_agg(jsonb_build_object(
                              'sku', l.sku, 'quantity', l.quantity,
                              'unit_price', jsonb_build_object('amount_minor', l.unit_price_minor, 'currency', o.currency))
                              ORDER BY l.line_no)
                           FROM order_lines l WHERE l.order_id = o.order_id),
               'total', jsonb_build_object('amount_minor', o.total_minor, 'currency', o.currency)))
      FROM orders o
     WHERE o.total_minor IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.order_id AND l.unit_price_minor IS NULL)
    UNION ALL
    SELECT o.order_id, 3, o.updated_at, 'OrderConfirmed',
           jsonb_build_object('total', jsonb_build_object('amount_minor', o.total_minor, 'currency', o.currency))
      FROM orders o WHERE o.status = 'CONFIRMED' AND o.total_minor IS NOT NULL
    UNION ALL
    SELECT o.order_id, 3, o.updated_at, 'OrderCancelled',
           jsonb_build_object('reason', jsonb_build_object(
               'code', coalesce(o.cancellation_code, 'other'), 'detail', coalesce(o.cancellation_detail, '')))
      FROM orders o WHERE o.status = 'CANCELLED'
)
INSERT INTO order_events (order_id, seq, event_id, event_type, schema_version, data, at, causation_id, correlation_id)
SELECT order_id, row_number() OVER (PARTITION BY order_id ORDER BY rank = 0 DESC, at, rank),
       gen_random_uuid(), event_type, 1, data, at, NULL, order_id
  FROM history;

UPDATE orders o SET version = e.seq, last_event_at = e.at
  FROM (SELECT order_id, max(seq) AS seq, max(at) AS at FROM order_events GROUP BY order_id) e
 WHERE e.order_id = o.order_id;

DROP TABLE order_timeline;
DROP TABLE order_lines;
ALTER TABLE orders
    DROP COLUMN customer_id,
    DROP COLUMN email,
    DROP COLUMN status,
    DROP COLUMN cancellation_code,
    DROP COLUMN cancellation_detail,
    DROP COLUMN total_minor,
    DROP COLUMN currency,
    DROP COLUMN updated_at;

-- The read model: one row per order for queries across orders, folded from
-- `order.events` and `orchestrator.events` by its own consumer group, never
-- from the tables above. `read_model_positions` is how far it has read each
-- partition (the next offset), written in the same transaction as the rows.
CREATE TABLE order_summaries (
    order_id             UUID PRIMARY KEY,
    customer_id          TEXT,
    placed_at            TIMESTAMPTZ,
    status               TEXT NOT NULL,
    total_minor          BIGINT,
    currency             TEXT,
    cancellation_code    TEXT,
    cancel_requested_at  TIMESTAMPTZ,
    -- The saga's latest reported step entry, as on the wire.
    last_step            JSONB,
    last_step_at         TIMESTAMPTZ,
    last_step_message_id UUID,
    version              BIGINT NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

CREATE INDEX order_summaries_by_placed ON order_summaries (placed_at DESC, order_id DESC);
CREATE INDEX order_summaries_by_customer ON order_summaries (customer_id, placed_at DESC, order_id DESC);
CREATE INDEX order_summaries_by_status ON order_summaries (status, placed_at DESC, order_id DESC);

CREATE TABLE read_model_positions (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
