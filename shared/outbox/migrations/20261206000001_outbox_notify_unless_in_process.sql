-- A connection whose process runs the relay hands it the rows it commits
-- (the `checkout.outbox_relay` setting says so), so the trigger wakes the
-- relay only for rows written elsewhere: a notification per commit cost the
-- database a queue entry and a wakeup of the listening backend, and the relay
-- a read of rows it is now given.
CREATE OR REPLACE FUNCTION outbox_messages_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('checkout.outbox_relay', true) IS DISTINCT FROM 'in_process' THEN
        PERFORM pg_notify('outbox_messages', '');
    END IF;
    RETURN NULL;
END
$$;
