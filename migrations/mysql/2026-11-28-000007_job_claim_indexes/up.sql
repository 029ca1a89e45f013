-- Claims walk one index in claim order (no sort of the whole backlog); ordered jobs
-- behind an unfinished one wait as `waiting` and are found per key.
CREATE INDEX eb_jobs_due ON eb_jobs (status, priority DESC, run_at, id);
CREATE INDEX eb_jobs_key_status ON eb_jobs (ordering_key, status, id);
DROP INDEX eb_jobs_claim ON eb_jobs;
DROP INDEX eb_jobs_ordering ON eb_jobs;
