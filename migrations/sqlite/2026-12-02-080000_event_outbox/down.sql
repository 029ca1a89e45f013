CREATE TABLE eb_bridge_state (
    name TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
-- The time cursor starts at the oldest event still waiting in the outbox, so the
-- older bridge picks up the backlog (without one it starts from now, as on a first run).
-- Whole seconds, rounded down: the older bridge reads 15 s before its cursor anyway.
INSERT INTO eb_bridge_state (name, value)
SELECT 'events_cursor', strftime('%Y-%m-%dT%H:%M:%S', t) || '+00:00'
FROM (SELECT MIN(occurred_at) AS t FROM eb_events WHERE undispatched IS NOT NULL) oldest
WHERE t IS NOT NULL;
DROP INDEX eb_events_undispatched;
ALTER TABLE eb_events DROP COLUMN undispatched;
