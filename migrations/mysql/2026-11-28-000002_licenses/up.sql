CREATE TABLE eb_licenses (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    product VARCHAR(16) NOT NULL,
    name VARCHAR(200) NOT NULL,
    owner_email VARCHAR(254) NOT NULL,
    status VARCHAR(16) NOT NULL,
    key_prefix VARCHAR(8) NOT NULL,
    key_digest VARCHAR(64) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NULL,
    max_machines INT NULL,
    entitlements TEXT NOT NULL,
    metadata LONGTEXT NOT NULL,
    require_machine BOOLEAN NOT NULL,
    heartbeat_interval_secs INT NULL,
    last_validated_at DATETIME(6) NULL,
    UNIQUE KEY eb_licenses_key_digest (key_digest),
    KEY eb_licenses_owner (owner_email),
    KEY eb_licenses_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE eb_machines (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    license_id VARCHAR(36) NOT NULL,
    fingerprint VARCHAR(255) NOT NULL,
    name VARCHAR(200) NULL,
    platform VARCHAR(100) NULL,
    hostname VARCHAR(255) NULL,
    created_at DATETIME(6) NOT NULL,
    last_heartbeat_at DATETIME(6) NULL,
    UNIQUE KEY eb_machines_fingerprint (license_id, fingerprint),
    CONSTRAINT eb_machines_license FOREIGN KEY (license_id) REFERENCES eb_licenses (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE eb_signing_keys (
    kid VARCHAR(32) NOT NULL PRIMARY KEY,
    algorithm VARCHAR(16) NOT NULL,
    public_key VARCHAR(64) NOT NULL,
    private_key_sealed TEXT NOT NULL,
    created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
