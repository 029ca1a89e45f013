-- Policies: reusable licence terms. A licence that names one takes every term it does not
-- set itself from it, at each read (changing a policy changes its licences).
CREATE TABLE eb_policies (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    product VARCHAR(16) NOT NULL,
    name VARCHAR(200) NOT NULL,
    max_machines INT NULL,
    require_machine BOOLEAN NOT NULL,
    heartbeat_interval_secs INT NULL,
    heartbeat_cull BOOLEAN NOT NULL,
    heartbeat_resurrection_secs INT NULL,
    grace_period_secs BIGINT NULL,
    expiry_strategy VARCHAR(16) NOT NULL,
    expiry_basis VARCHAR(24) NOT NULL,
    duration_secs BIGINT NULL,
    entitlements TEXT NOT NULL,
    metadata LONGTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    KEY eb_policies_product (product)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A licence's own terms (NULL: the policy's, or the default when it names none), when
-- its expiry clock started (first activation or validation) and when its grace began.
ALTER TABLE eb_licenses
    ADD COLUMN policy_id VARCHAR(36) NULL,
    ADD COLUMN heartbeat_cull BOOLEAN NULL,
    ADD COLUMN heartbeat_resurrection_secs INT NULL,
    ADD COLUMN grace_period_secs BIGINT NULL,
    ADD COLUMN expiry_strategy VARCHAR(16) NULL,
    ADD COLUMN expiry_basis VARCHAR(24) NULL,
    ADD COLUMN duration_secs BIGINT NULL,
    ADD COLUMN expiry_started_at DATETIME(6) NULL,
    ADD COLUMN grace_started_at DATETIME(6) NULL,
    ADD KEY eb_licenses_policy (policy_id),
    ADD CONSTRAINT eb_licenses_policy_fk FOREIGN KEY (policy_id) REFERENCES eb_policies (id);

-- When the sweep found the machine dead (cleared by its next heartbeat), so that
-- `machine.heartbeat.dead` is recorded once per silence, by one replica.
ALTER TABLE eb_machines
    ADD COLUMN dead_at DATETIME(6) NULL,
    ADD KEY eb_machines_heartbeat (last_heartbeat_at);

-- Machines culled for silence, kept for the licence's resurrection window.
CREATE TABLE eb_culled_machines (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    license_id VARCHAR(36) NOT NULL,
    fingerprint VARCHAR(255) NOT NULL,
    name VARCHAR(200) NULL,
    platform VARCHAR(100) NULL,
    hostname VARCHAR(255) NULL,
    created_at DATETIME(6) NOT NULL,
    last_heartbeat_at DATETIME(6) NULL,
    culled_at DATETIME(6) NOT NULL,
    resurrect_until DATETIME(6) NOT NULL,
    UNIQUE KEY eb_culled_machines_fingerprint (license_id, fingerprint),
    KEY eb_culled_machines_until (resurrect_until),
    CONSTRAINT eb_culled_machines_license FOREIGN KEY (license_id) REFERENCES eb_licenses (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
