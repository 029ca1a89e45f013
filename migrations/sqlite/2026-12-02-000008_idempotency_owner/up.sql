-- Idempotency keys belong to an owner: `key:<api key id>` for callers, `system:<name>`
-- for the gateway's own work (the bridge, SNS). One caller's key never meets another's.
--
-- Keys are remembered for 24 h; expired ones (never purged before) are not carried over.
CREATE TABLE idempotency_keys_owned (
    owner TEXT NOT NULL,
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (owner, scope, idem_key)
);
-- Existing keys go to the creator of the resource they name; a key whose owner cannot
-- be told is kept under `legacy`, where no caller reaches it.
INSERT INTO idempotency_keys_owned (owner, scope, idem_key, request_hash, resource_id, created_at)
SELECT
    CASE
        WHEN i.scope = 'sns' THEN 'system:sns'
        ELSE COALESCE(
            (SELECT CASE
                WHEN m.created_by LIKE 'api\_key:%' ESCAPE '\' THEN 'key:' || substr(m.created_by, 9)
                WHEN m.created_by LIKE 'bridge:%' THEN 'system:bridge'
             END
             FROM eb_email_messages m
             WHERE (i.scope = 'emails' AND m.id = i.resource_id)
                OR (i.scope = 'emails.batch' AND m.batch_id = i.resource_id)
             LIMIT 1),
            (SELECT CASE
                WHEN s.created_by LIKE 'api\_key:%' ESCAPE '\' THEN 'key:' || substr(s.created_by, 9)
                WHEN s.created_by LIKE 'bridge:%' THEN 'system:bridge'
             END
             FROM eb_slack_messages s
             WHERE i.scope = 'slack.messages' AND s.id = i.resource_id),
            'legacy')
    END,
    i.scope, i.idem_key, i.request_hash, i.resource_id, i.created_at
FROM eb_idempotency_keys i
WHERE i.created_at >= strftime('%Y-%m-%d %H:%M:%f', 'now', '-24 hours');
DROP TABLE eb_idempotency_keys;
ALTER TABLE idempotency_keys_owned RENAME TO eb_idempotency_keys;
-- The hourly purge of expired keys deletes on `created_at`.
CREATE INDEX eb_idempotency_keys_created ON eb_idempotency_keys (created_at);
