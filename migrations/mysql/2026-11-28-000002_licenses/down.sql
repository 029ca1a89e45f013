DROP TABLE eb_signing_keys;
DROP TABLE eb_machines;
DROP TABLE eb_licenses;
