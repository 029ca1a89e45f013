CREATE TABLE eb_licenses (
    id TEXT NOT NULL PRIMARY KEY,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    owner_email TEXT NOT NULL,
    status TEXT NOT NULL,
    key_prefix TEXT NOT NULL,
    key_digest TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NULL,
    max_machines INTEGER NULL,
    entitlements TEXT NOT NULL,
    metadata TEXT NOT NULL,
    require_machine BOOLEAN NOT NULL,
    heartbeat_interval_secs INTEGER NULL,
    last_validated_at TIMESTAMP NULL
);
CREATE INDEX eb_licenses_owner ON eb_licenses (owner_email);
CREATE INDEX eb_licenses_expiry ON eb_licenses (expires_at);

CREATE TABLE eb_machines (
    id TEXT NOT NULL PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES eb_licenses (id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    name TEXT NULL,
    platform TEXT NULL,
    hostname TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    last_heartbeat_at TIMESTAMP NULL,
    UNIQUE (license_id, fingerprint)
);

CREATE TABLE eb_signing_keys (
    kid TEXT NOT NULL PRIMARY KEY,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    private_key_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
