-- The bridge's outbox, which replaces its time cursor (dropped below): an event is TRUE
-- here until the bridge has queued its deliveries, then NULL. Rows inserted without
-- naming the column (by an older replica during a rolling upgrade) take the default
-- and wait for the bridge like new ones.
--
-- Events stored before this migration count as dispatched up to the old bridge's
-- cursor: those from 15 s before it on (the overlap the old bridge read again) are
-- offered again, however long ago that was (a bridge that lagged, or a fleet stopped
-- for the upgrade, loses nothing); the bridge's marks keep their deliveries to once
-- per target. Without a cursor (the bridge never ran), the last ten minutes are.
--
-- `events` has no index on its time: the range is taken on the primary key instead.
-- Ids are UUIDv7 text, whose first 12 hex digits (8, a dash, 4) are the Unix time in
-- milliseconds, so every id of a millisecond sorts at or after that prefix. A range
-- scan on the primary key locks only the rows it updates.
ALTER TABLE eb_events ADD COLUMN undispatched BOOLEAN NULL;
ALTER TABLE eb_events ALTER COLUMN undispatched SET DEFAULT TRUE;
SET @eb_outbox_since = COALESCE(
    (SELECT CAST(REPLACE(LEFT(value, 19), 'T', ' ') AS DATETIME)
     FROM eb_bridge_state WHERE name = 'events_cursor') - INTERVAL 15 SECOND,
    UTC_TIMESTAMP() - INTERVAL 10 MINUTE);
SET @eb_outbox_ms = LPAD(LOWER(HEX(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', @eb_outbox_since) * 1000)), 12, '0');
SET @eb_outbox_floor = CONCAT(SUBSTRING(@eb_outbox_ms, 1, 8), '-', SUBSTRING(@eb_outbox_ms, 9, 4));
UPDATE eb_events SET undispatched = TRUE WHERE id >= @eb_outbox_floor;
CREATE INDEX eb_events_undispatched ON eb_events (undispatched, id);
DROP TABLE eb_bridge_state;
