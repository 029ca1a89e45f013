UPDATE eb_jobs SET status = 'queued' WHERE status = 'waiting';
CREATE INDEX eb_jobs_claim ON eb_jobs (status, run_at);
CREATE INDEX eb_jobs_ordering ON eb_jobs (ordering_key, id);
DROP INDEX eb_jobs_due ON eb_jobs;
DROP INDEX eb_jobs_key_status ON eb_jobs;
