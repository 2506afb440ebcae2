-- Every change an operator makes to a product by hand: who, why, and what
-- the stock was before and after.
CREATE TABLE stock_changes (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku           TEXT NOT NULL REFERENCES products (sku),
    operator      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    on_hand_from  INTEGER,
    on_hand_to    INTEGER NOT NULL,
    at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX stock_changes_by_sku ON stock_changes (sku, id);
