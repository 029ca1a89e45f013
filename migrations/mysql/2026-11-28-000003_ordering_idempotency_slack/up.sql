ALTER TABLE eb_jobs ADD COLUMN ordering_key VARCHAR(191) NULL;
CREATE INDEX eb_jobs_ordering ON eb_jobs (ordering_key, id);

CREATE TABLE eb_idempotency_keys (
    scope VARCHAR(64) NOT NULL,
    idem_key VARCHAR(255) NOT NULL,
    request_hash VARCHAR(64) NOT NULL,
    resource_id VARCHAR(36) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (scope, idem_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE eb_slack_messages (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    channel VARCHAR(100) NOT NULL,
    level VARCHAR(16) NOT NULL,
    title VARCHAR(300) NOT NULL,
    request LONGTEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    slack_channel VARCHAR(100) NULL,
    ts VARCHAR(32) NULL,
    thread_ts VARCHAR(32) NULL,
    error TEXT NULL,
    created_by VARCHAR(100) NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    posted_at DATETIME(6) NULL,
    KEY eb_slack_messages_channel (channel, id),
    KEY eb_slack_messages_status (status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
