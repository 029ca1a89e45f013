CREATE TABLE eb_bridge_rules (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    filter TEXT NOT NULL,
    actions TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE eb_webhooks (
    id TEXT NOT NULL PRIMARY KEY,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    description TEXT NULL,
    secret_sealed TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE eb_webhook_deliveries (
    id TEXT NOT NULL PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status_code INTEGER NULL,
    error TEXT NULL,
    duration_ms BIGINT NOT NULL,
    delivered_at TIMESTAMP NOT NULL
);

CREATE INDEX eb_webhook_deliveries_webhook ON eb_webhook_deliveries (webhook_id, id);

CREATE TABLE eb_bridge_marks (
    mark TEXT NOT NULL PRIMARY KEY,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE eb_bridge_state (
    name TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
