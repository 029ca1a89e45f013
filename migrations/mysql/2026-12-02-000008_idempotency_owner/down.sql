DROP INDEX eb_idempotency_keys_created ON eb_idempotency_keys;
-- Keys of different owners may share (scope, idem_key): keep the oldest of each.
DELETE i FROM eb_idempotency_keys i
JOIN eb_idempotency_keys j
  ON j.scope = i.scope AND j.idem_key = i.idem_key
 AND (j.created_at < i.created_at OR (j.created_at = i.created_at AND j.owner < i.owner));
ALTER TABLE eb_idempotency_keys DROP PRIMARY KEY, ADD PRIMARY KEY (scope, idem_key);
ALTER TABLE eb_idempotency_keys DROP COLUMN owner;
