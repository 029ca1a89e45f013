CREATE TABLE eb_email_messages (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    batch_id VARCHAR(36) NULL,
    from_addr VARCHAR(320) NOT NULL,
    subject TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    template VARCHAR(100) NULL,
    summary LONGTEXT NOT NULL,
    raw_mime LONGBLOB NOT NULL,
    size BIGINT NOT NULL,
    error TEXT NULL,
    created_by VARCHAR(100) NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    sent_at DATETIME(6) NULL,
    KEY eb_email_messages_status (status, id),
    KEY eb_email_messages_batch (batch_id, id),
    KEY eb_email_messages_from (from_addr, id),
    KEY eb_email_messages_template (template, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE eb_email_deliveries (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    email_id VARCHAR(36) NOT NULL,
    seq INT NOT NULL,
    recipients TEXT NOT NULL,
    suppressed TEXT NULL,
    status VARCHAR(16) NOT NULL,
    provider_id VARCHAR(255) NULL,
    error TEXT NULL,
    updated_at DATETIME(6) NOT NULL,
    UNIQUE KEY eb_email_deliveries_email (email_id, seq),
    KEY eb_email_deliveries_provider (provider_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE eb_email_templates (
    name VARCHAR(100) NOT NULL PRIMARY KEY,
    subject TEXT NOT NULL,
    html LONGTEXT NULL,
    text LONGTEXT NULL,
    description TEXT NULL,
    version BIGINT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE eb_email_suppressions (
    address VARCHAR(320) NOT NULL PRIMARY KEY,
    reason VARCHAR(16) NOT NULL,
    detail TEXT NULL,
    email_id VARCHAR(36) NULL,
    created_at DATETIME(6) NOT NULL,
    KEY eb_email_suppressions_reason (reason, address)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
