DROP TABLE slack_messages;
DROP TABLE idempotency_keys;
DROP INDEX jobs_ordering ON jobs;
ALTER TABLE jobs DROP COLUMN ordering_key;
