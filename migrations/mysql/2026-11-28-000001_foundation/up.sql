CREATE TABLE eb_api_keys (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    prefix VARCHAR(16) NOT NULL,
    digest VARCHAR(64) NOT NULL,
    scopes TEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NULL,
    last_used_at DATETIME(6) NULL,
    revoked_at DATETIME(6) NULL,
    UNIQUE KEY eb_api_keys_digest (digest)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE eb_jobs (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    queue VARCHAR(64) NOT NULL,
    payload LONGTEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    priority INT NOT NULL,
    attempts INT NOT NULL,
    max_attempts INT NOT NULL,
    run_at DATETIME(6) NOT NULL,
    locked_by VARCHAR(64) NULL,
    locked_until DATETIME(6) NULL,
    last_error TEXT NULL,
    dedup_key VARCHAR(191) NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    finished_at DATETIME(6) NULL,
    UNIQUE KEY eb_jobs_dedup (queue, dedup_key),
    KEY eb_jobs_claim (status, run_at),
    KEY eb_jobs_lease (status, locked_until)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE eb_events (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    occurred_at DATETIME(6) NOT NULL,
    event_type VARCHAR(64) NOT NULL,
    actor VARCHAR(100) NULL,
    subject VARCHAR(255) NULL,
    data LONGTEXT NOT NULL,
    KEY eb_events_type_time (event_type, occurred_at),
    KEY eb_events_subject (subject)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
