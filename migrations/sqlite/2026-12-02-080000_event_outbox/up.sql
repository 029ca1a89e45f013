-- The bridge's outbox, which replaces its time cursor (dropped below): an event is 1
-- here until the bridge has queued its deliveries, then NULL. Rows inserted without
-- naming the column take the default and wait for the bridge like new ones.
--
-- Events stored before this migration count as dispatched (the cursor bridged them),
-- except those of the last ten minutes, which are offered again in case the cursor had
-- not reached them yet: the bridge's marks keep their deliveries to once per target.
ALTER TABLE events ADD COLUMN undispatched BOOLEAN NULL DEFAULT 1;
UPDATE events SET undispatched = NULL WHERE occurred_at < strftime('%Y-%m-%d %H:%M:%f', 'now', '-10 minutes');
CREATE INDEX events_undispatched ON events (undispatched, id);
DROP TABLE bridge_state;
