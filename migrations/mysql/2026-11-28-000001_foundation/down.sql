DROP TABLE events;
DROP TABLE jobs;
DROP TABLE api_keys;
