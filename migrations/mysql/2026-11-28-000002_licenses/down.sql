DROP TABLE signing_keys;
DROP TABLE machines;
DROP TABLE licenses;
