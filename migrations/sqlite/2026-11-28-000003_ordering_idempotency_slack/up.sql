ALTER TABLE eb_jobs ADD COLUMN ordering_key TEXT NULL;
CREATE INDEX eb_jobs_ordering ON eb_jobs (ordering_key, id);

CREATE TABLE eb_idempotency_keys (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

CREATE TABLE eb_slack_messages (
    id TEXT NOT NULL PRIMARY KEY,
    channel TEXT NOT NULL,
    level TEXT NOT NULL,
    title TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    slack_channel TEXT NULL,
    ts TEXT NULL,
    thread_ts TEXT NULL,
    error TEXT NULL,
    created_by TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    posted_at TIMESTAMP NULL
);
CREATE INDEX eb_slack_messages_channel ON eb_slack_messages (channel, id);
CREATE INDEX eb_slack_messages_status ON eb_slack_messages (status, id);
