CREATE TABLE eb_api_keys (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NULL,
    last_used_at TIMESTAMP NULL,
    revoked_at TIMESTAMP NULL
);

CREATE TABLE eb_jobs (
    id TEXT NOT NULL PRIMARY KEY,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    run_at TIMESTAMP NOT NULL,
    locked_by TEXT NULL,
    locked_until TIMESTAMP NULL,
    last_error TEXT NULL,
    dedup_key TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NULL,
    UNIQUE (queue, dedup_key)
);
CREATE INDEX eb_jobs_claim ON eb_jobs (status, run_at);
CREATE INDEX eb_jobs_lease ON eb_jobs (status, locked_until);

CREATE TABLE eb_events (
    id TEXT NOT NULL PRIMARY KEY,
    occurred_at TIMESTAMP NOT NULL,
    event_type TEXT NOT NULL,
    actor TEXT NULL,
    subject TEXT NULL,
    data TEXT NOT NULL
);
CREATE INDEX eb_events_type_time ON eb_events (event_type, occurred_at);
CREATE INDEX eb_events_subject ON eb_events (subject);
