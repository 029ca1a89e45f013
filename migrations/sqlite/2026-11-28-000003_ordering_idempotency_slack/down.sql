DROP TABLE slack_messages;
DROP TABLE idempotency_keys;
DROP INDEX jobs_ordering;
ALTER TABLE jobs DROP COLUMN ordering_key;
