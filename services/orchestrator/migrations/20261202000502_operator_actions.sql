-- An operator's action (retry, abort) is a transition too: who asked, and why.
ALTER TABLE saga_transitions
    ADD COLUMN operator TEXT,
    ADD COLUMN reason TEXT;
