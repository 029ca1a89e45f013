CREATE TABLE eb_email_messages (
    id TEXT NOT NULL PRIMARY KEY,
    batch_id TEXT NULL,
    from_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    template TEXT NULL,
    summary TEXT NOT NULL,
    raw_mime BLOB NOT NULL,
    size BIGINT NOT NULL,
    error TEXT NULL,
    created_by TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP NULL
);
CREATE INDEX eb_email_messages_status ON eb_email_messages (status, id);
CREATE INDEX eb_email_messages_batch ON eb_email_messages (batch_id, id);
CREATE INDEX eb_email_messages_from ON eb_email_messages (from_addr, id);
CREATE INDEX eb_email_messages_template ON eb_email_messages (template, id);

CREATE TABLE eb_email_deliveries (
    id TEXT NOT NULL PRIMARY KEY,
    email_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    recipients TEXT NOT NULL,
    suppressed TEXT NULL,
    status TEXT NOT NULL,
    provider_id TEXT NULL,
    error TEXT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX eb_email_deliveries_email ON eb_email_deliveries (email_id, seq);
CREATE INDEX eb_email_deliveries_provider ON eb_email_deliveries (provider_id);

CREATE TABLE eb_email_templates (
    name TEXT NOT NULL PRIMARY KEY,
    subject TEXT NOT NULL,
    html TEXT NULL,
    text TEXT NULL,
    description TEXT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE eb_email_suppressions (
    address TEXT NOT NULL PRIMARY KEY,
    reason TEXT NOT NULL,
    detail TEXT NULL,
    email_id TEXT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX eb_email_suppressions_reason ON eb_email_suppressions (reason, address);
