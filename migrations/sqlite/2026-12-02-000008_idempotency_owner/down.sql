CREATE TABLE idempotency_keys_global (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
INSERT OR IGNORE INTO idempotency_keys_global (scope, idem_key, request_hash, resource_id, created_at)
SELECT scope, idem_key, request_hash, resource_id, created_at FROM eb_idempotency_keys ORDER BY created_at;
DROP TABLE eb_idempotency_keys;
ALTER TABLE idempotency_keys_global RENAME TO eb_idempotency_keys;
