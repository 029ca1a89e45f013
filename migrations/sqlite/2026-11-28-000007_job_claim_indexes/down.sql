UPDATE jobs SET status = 'queued' WHERE status = 'waiting';
CREATE INDEX jobs_claim ON jobs (status, run_at);
CREATE INDEX jobs_ordering ON jobs (ordering_key, id);
DROP INDEX jobs_due;
DROP INDEX jobs_key_status;
