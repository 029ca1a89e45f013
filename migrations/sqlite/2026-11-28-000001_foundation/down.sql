DROP TABLE eb_events;
DROP TABLE eb_jobs;
DROP TABLE eb_api_keys;
