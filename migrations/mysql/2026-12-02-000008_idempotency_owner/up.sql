-- Idempotency keys belong to an owner: `key:<api key id>` for callers, `system:<name>`
-- for the gateway's own work (the bridge, SNS). One caller's key never meets another's.
ALTER TABLE idempotency_keys ADD COLUMN owner VARCHAR(64) NOT NULL DEFAULT 'legacy' FIRST;
-- Existing keys go to the creator of the resource they name; a key whose owner cannot
-- be told stays under `legacy`, where no caller reaches it.
UPDATE idempotency_keys SET owner = 'system:sns' WHERE scope = 'sns';
UPDATE idempotency_keys i
SET owner = COALESCE(
    (SELECT CASE
        WHEN m.created_by LIKE 'api\_key:%' THEN CONCAT('key:', SUBSTRING(m.created_by, 9))
        WHEN m.created_by LIKE 'bridge:%' THEN 'system:bridge'
     END
     FROM email_messages m
     WHERE (i.scope = 'emails' AND m.id = i.resource_id)
        OR (i.scope = 'emails.batch' AND m.batch_id = i.resource_id)
     LIMIT 1),
    (SELECT CASE
        WHEN s.created_by LIKE 'api\_key:%' THEN CONCAT('key:', SUBSTRING(s.created_by, 9))
        WHEN s.created_by LIKE 'bridge:%' THEN 'system:bridge'
     END
     FROM slack_messages s
     WHERE i.scope = 'slack.messages' AND s.id = i.resource_id),
    'legacy')
WHERE i.scope <> 'sns';
ALTER TABLE idempotency_keys DROP PRIMARY KEY, ADD PRIMARY KEY (owner, scope, idem_key);
ALTER TABLE idempotency_keys ALTER COLUMN owner DROP DEFAULT;
