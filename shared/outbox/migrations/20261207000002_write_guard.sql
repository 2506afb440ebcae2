-- Makes an optimistic write fail whole when what it read has changed: a
-- statement that claims a message, writes what it decided from an unlocked
-- read and guards that write (e.g. `ON CONFLICT … DO UPDATE … WHERE` the row
-- is still as read) calls this on whether the guard held, and a guard that
-- did not hold undoes the claim and everything else as a serialization
-- failure, which the caller answers by reading again under a lock.
CREATE OR REPLACE FUNCTION checkout_write_guard(holds BOOLEAN, what TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT holds THEN
        RAISE EXCEPTION '%', what USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END
$$;
