-- A small demo catalog. SOLD-OUT-CAP has no stock, to show an out-of-stock checkout.
INSERT INTO products (sku, name, unit_price_minor, currency, on_hand) VALUES
    ('MUG-BLACK',     'Black enamel mug',            1250, 'EUR', 100),
    ('MUG-WHITE',     'White enamel mug',            1250, 'EUR', 100),
    ('TEE-S',         'Logo tee, small',             1999, 'EUR',  50),
    ('TEE-M',         'Logo tee, medium',            1999, 'EUR',  50),
    ('TEE-L',         'Logo tee, large',             1999, 'EUR',  50),
    ('HOODIE-M',      'Zip hoodie, medium',          4900, 'EUR',  20),
    ('STICKER-PACK',  'Sticker pack',                 499, 'EUR', 500),
    ('POSTER-A2',     'Architecture poster, A2',     2500, 'EUR',  10),
    ('LIMITED-PRINT', 'Signed print, edition of 10', 12000, 'EUR', 10),
    ('SOLD-OUT-CAP',  'Embroidered cap',             1500, 'EUR',   0)
ON CONFLICT (sku) DO NOTHING;
