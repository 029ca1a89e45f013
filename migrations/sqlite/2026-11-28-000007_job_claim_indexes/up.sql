-- Claims walk one index in claim order (no sort of the whole backlog); ordered jobs
-- behind an unfinished one wait as `waiting` and are found per key.
CREATE INDEX jobs_due ON jobs (status, priority DESC, run_at, id);
CREATE INDEX jobs_key_status ON jobs (ordering_key, status, id);
DROP INDEX jobs_claim;
DROP INDEX jobs_ordering;
