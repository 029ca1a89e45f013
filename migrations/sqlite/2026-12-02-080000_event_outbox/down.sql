CREATE TABLE bridge_state (
    name TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
DROP INDEX events_undispatched;
ALTER TABLE events DROP COLUMN undispatched;
