-- The bridge's outbox, which replaces its time cursor (dropped below): an event is TRUE
-- here until the bridge has queued its deliveries, then NULL. Rows inserted without
-- naming the column (by an older replica during a rolling upgrade) take the default
-- and wait for the bridge like new ones.
--
-- Events stored before this migration count as dispatched (the cursor bridged them),
-- except those of the last ten minutes, which are offered again in case the cursor had
-- not reached them yet: the bridge's marks keep their deliveries to once per target.
ALTER TABLE events ADD COLUMN undispatched BOOLEAN NULL;
ALTER TABLE events ALTER COLUMN undispatched SET DEFAULT TRUE;
UPDATE events SET undispatched = TRUE WHERE occurred_at >= UTC_TIMESTAMP(6) - INTERVAL 10 MINUTE;
CREATE INDEX events_undispatched ON events (undispatched, id);
DROP TABLE bridge_state;
