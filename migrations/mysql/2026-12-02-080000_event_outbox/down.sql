CREATE TABLE bridge_state (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
DROP INDEX events_undispatched ON events;
ALTER TABLE events DROP COLUMN undispatched;
