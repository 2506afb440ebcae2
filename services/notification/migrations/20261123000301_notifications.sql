-- Every email sent: at most one per order and outcome.
CREATE TABLE notifications (
    order_id        UUID NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('order_confirmed', 'order_cancelled')),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    smtp_message_id TEXT NOT NULL,
    smtp_response   TEXT,
    sent_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, kind)
);
