-- The relay deletes a row once the broker has acknowledged it, instead of
-- setting `published_at` and pruning it a day later: setting it wrote a new
-- version of the row (payload and all) and an entry in each index, some 3 KB
-- of WAL per message. What was published is on the topics.
--
-- `published_at` stays for now: a relay of the previous release, still
-- running during a rolling upgrade, sets it, and the rows it marks are
-- skipped by the current relay and pruned. A later migration drops it.
DELETE FROM outbox_messages WHERE published_at IS NOT NULL;
DROP INDEX outbox_messages_published;
