-- A saga's version counts its saves. A consumer that reads a saga without
-- locking it writes it back only if the version is still the one it read
-- (an optimistic write, one statement), and `saga_write_guard` makes such a
-- statement fail whole, as a serialization failure that is retried, when a
-- guard did not hold. (Written to apply again harmlessly, e.g. after a
-- rollback to a build that did not know it.)
ALTER TABLE sagas ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION saga_write_guard(claimed BIGINT, claims INT, saved BIGINT, saves INT) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
    IF claimed <> claims THEN
        RAISE EXCEPTION 'a message of this write was claimed meanwhile (% of % new)', claimed, claims
            USING ERRCODE = 'serialization_failure';
    END IF;
    IF saved <> saves THEN
        RAISE EXCEPTION 'a saga of this write moved on meanwhile (% of % saved)', saved, saves
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END
$$;
