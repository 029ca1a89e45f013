DROP TABLE eb_culled_machines;
ALTER TABLE eb_machines DROP KEY eb_machines_heartbeat, DROP COLUMN dead_at;
ALTER TABLE eb_licenses
    DROP FOREIGN KEY eb_licenses_policy_fk,
    DROP KEY eb_licenses_policy,
    DROP COLUMN policy_id,
    DROP COLUMN heartbeat_cull,
    DROP COLUMN heartbeat_resurrection_secs,
    DROP COLUMN grace_period_secs,
    DROP COLUMN expiry_strategy,
    DROP COLUMN expiry_basis,
    DROP COLUMN duration_secs,
    DROP COLUMN expiry_started_at,
    DROP COLUMN grace_started_at;
DROP TABLE eb_policies;
