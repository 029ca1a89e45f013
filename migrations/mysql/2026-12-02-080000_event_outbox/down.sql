CREATE TABLE eb_bridge_state (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- The time cursor starts at the oldest event still waiting in the outbox, so the
-- older bridge picks up the backlog (without one it starts from now, as on a first run).
INSERT INTO eb_bridge_state (name, value)
SELECT 'events_cursor', DATE_FORMAT(t, '%Y-%m-%dT%H:%i:%s.%f+00:00')
FROM (SELECT MIN(occurred_at) AS t FROM eb_events WHERE undispatched IS NOT NULL) oldest
WHERE t IS NOT NULL;
DROP INDEX eb_events_undispatched ON eb_events;
ALTER TABLE eb_events DROP COLUMN undispatched;
