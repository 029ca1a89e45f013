-- The bridge's outbox, which replaces its time cursor (dropped below): an event is 1
-- here until the bridge has queued its deliveries, then NULL. Rows inserted without
-- naming the column take the default and wait for the bridge like new ones.
--
-- Events stored before this migration count as dispatched up to the old bridge's
-- cursor: those from 15 s before it on (the overlap the old bridge read again) are
-- offered again, however long ago that was; the bridge's marks keep their deliveries
-- to once per target. Without a cursor (the bridge never ran), the last ten minutes
-- are. The range is taken on the primary key, as on MySQL: ids are UUIDv7 text whose
-- first 12 hex digits (8, a dash, 4) are the Unix time in milliseconds.
ALTER TABLE eb_events ADD COLUMN undispatched BOOLEAN NULL DEFAULT 1;
UPDATE eb_events SET undispatched = NULL WHERE id < (
    SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4)
    FROM (SELECT printf('%012x', CAST(strftime('%s', COALESCE(
        (SELECT datetime(substr(value, 1, 19), '-15 seconds') FROM eb_bridge_state WHERE name = 'events_cursor'),
        datetime('now', '-10 minutes'))) AS INTEGER) * 1000) AS h)
);
CREATE INDEX eb_events_undispatched ON eb_events (undispatched, id);
DROP TABLE eb_bridge_state;
