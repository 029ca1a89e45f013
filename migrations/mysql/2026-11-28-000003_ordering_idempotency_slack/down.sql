DROP TABLE eb_slack_messages;
DROP TABLE eb_idempotency_keys;
DROP INDEX eb_jobs_ordering ON eb_jobs;
ALTER TABLE eb_jobs DROP COLUMN ordering_key;
