-- Idempotency keys belong to an owner: `key:<api key id>` for callers, `system:<name>`
-- for the gateway's own work (the bridge, SNS). One caller's key never meets another's.
--
-- Keys are remembered for 24 h; expired ones (never purged before) go first, so the
-- table rebuilt below and the backfill only carry live keys.
DELETE FROM eb_idempotency_keys WHERE created_at < UTC_TIMESTAMP(6) - INTERVAL 24 HOUR;
ALTER TABLE eb_idempotency_keys ADD COLUMN owner VARCHAR(64) NOT NULL DEFAULT 'legacy' FIRST;
-- Existing keys go to the creator of the resource they name; a key whose owner cannot
-- be told stays under `legacy`, where no caller reaches it. One join per scope, each on
-- an index of the resource table (a row matching several messages is updated once).
UPDATE eb_idempotency_keys SET owner = 'system:sns' WHERE scope = 'sns';
UPDATE eb_idempotency_keys i
JOIN eb_email_messages m ON m.id = i.resource_id
SET i.owner = CASE
    WHEN m.created_by LIKE 'api\_key:%' THEN CONCAT('key:', SUBSTRING(m.created_by, 9))
    WHEN m.created_by LIKE 'bridge:%' THEN 'system:bridge'
    ELSE 'legacy'
END
WHERE i.scope = 'emails';
UPDATE eb_idempotency_keys i
JOIN eb_email_messages m ON m.batch_id = i.resource_id
SET i.owner = CASE
    WHEN m.created_by LIKE 'api\_key:%' THEN CONCAT('key:', SUBSTRING(m.created_by, 9))
    WHEN m.created_by LIKE 'bridge:%' THEN 'system:bridge'
    ELSE 'legacy'
END
WHERE i.scope = 'emails.batch';
UPDATE eb_idempotency_keys i
JOIN eb_slack_messages s ON s.id = i.resource_id
SET i.owner = CASE
    WHEN s.created_by LIKE 'api\_key:%' THEN CONCAT('key:', SUBSTRING(s.created_by, 9))
    WHEN s.created_by LIKE 'bridge:%' THEN 'system:bridge'
    ELSE 'legacy'
END
WHERE i.scope = 'slack.messages';
-- The hourly purge of expired keys deletes on `created_at`.
ALTER TABLE eb_idempotency_keys DROP PRIMARY KEY, ADD PRIMARY KEY (owner, scope, idem_key),
    ADD KEY eb_idempotency_keys_created (created_at);
ALTER TABLE eb_idempotency_keys ALTER COLUMN owner DROP DEFAULT;
