-- A saga keeps its timeline entries back (in its state) to report several
-- transitions' in one record; the timer reports them when they fall due.
-- (Written to apply again harmlessly, e.g. after a rollback to a build
-- that did not know it.)
ALTER TABLE sagas ADD COLUMN IF NOT EXISTS report_due_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS sagas_report_due ON sagas (report_due_at) WHERE report_due_at IS NOT NULL;
