DROP TABLE eb_blob_uploads;
