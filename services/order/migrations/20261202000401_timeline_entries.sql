-- Since SagaStepRecorded 1.1 one message carries every entry of one saga
-- transition (oldest first): a message's entries are numbered from 0.
ALTER TABLE order_timeline ADD COLUMN entry SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE order_timeline DROP CONSTRAINT order_timeline_pkey;
ALTER TABLE order_timeline ADD PRIMARY KEY (message_id, entry);
