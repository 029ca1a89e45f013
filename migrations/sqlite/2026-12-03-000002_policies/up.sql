-- Policies: reusable licence terms. A licence that names one takes every term it does not
-- set itself from it, at each read (changing a policy changes its licences).
CREATE TABLE eb_policies (
    id TEXT NOT NULL PRIMARY KEY,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    max_machines INTEGER NULL,
    require_machine BOOLEAN NOT NULL,
    heartbeat_interval_secs INTEGER NULL,
    heartbeat_cull BOOLEAN NOT NULL,
    heartbeat_resurrection_secs INTEGER NULL,
    grace_period_secs BIGINT NULL,
    expiry_strategy TEXT NOT NULL,
    expiry_basis TEXT NOT NULL,
    duration_secs BIGINT NULL,
    entitlements TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX eb_policies_product ON eb_policies (product);

-- A licence's own terms (NULL: the policy's, or the default when it names none), when
-- its expiry clock started (first activation or validation) and when its grace began.
-- (No foreign key on policy_id: SQLite cannot drop such a column again; writers are
-- serialised here, and the service refuses to delete a policy in use.)
ALTER TABLE eb_licenses ADD COLUMN policy_id TEXT NULL;
ALTER TABLE eb_licenses ADD COLUMN heartbeat_cull BOOLEAN NULL;
ALTER TABLE eb_licenses ADD COLUMN heartbeat_resurrection_secs INTEGER NULL;
ALTER TABLE eb_licenses ADD COLUMN grace_period_secs BIGINT NULL;
ALTER TABLE eb_licenses ADD COLUMN expiry_strategy TEXT NULL;
ALTER TABLE eb_licenses ADD COLUMN expiry_basis TEXT NULL;
ALTER TABLE eb_licenses ADD COLUMN duration_secs BIGINT NULL;
ALTER TABLE eb_licenses ADD COLUMN expiry_started_at TIMESTAMP NULL;
ALTER TABLE eb_licenses ADD COLUMN grace_started_at TIMESTAMP NULL;
CREATE INDEX eb_licenses_policy ON eb_licenses (policy_id);

-- When the sweep found the machine dead (cleared by its next heartbeat), so that
-- `machine.heartbeat.dead` is recorded once per silence, by one replica.
ALTER TABLE eb_machines ADD COLUMN dead_at TIMESTAMP NULL;
CREATE INDEX eb_machines_heartbeat ON eb_machines (last_heartbeat_at);

-- Machines culled for silence, kept for the licence's resurrection window.
CREATE TABLE eb_culled_machines (
    id TEXT NOT NULL PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES eb_licenses (id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    name TEXT NULL,
    platform TEXT NULL,
    hostname TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    last_heartbeat_at TIMESTAMP NULL,
    culled_at TIMESTAMP NOT NULL,
    resurrect_until TIMESTAMP NOT NULL,
    UNIQUE (license_id, fingerprint)
);
CREATE INDEX eb_culled_machines_until ON eb_culled_machines (resurrect_until);
