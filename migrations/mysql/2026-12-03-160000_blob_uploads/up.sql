-- Multipart uploads in progress (blob-store's `service/uploads.rs`): what was declared at
-- creation, and the backend's own upload (S3's UploadId; the local store's parts folder).
-- A row lives until the upload is completed or aborted, or swept a day after creation.
CREATE TABLE eb_blob_uploads (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    namespace VARCHAR(32) NOT NULL,
    object_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    part_size BIGINT NOT NULL,
    content_type VARCHAR(255) NOT NULL,
    sha256 VARCHAR(64) NULL,
    backend_id TEXT NOT NULL,
    actor VARCHAR(255) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    -- 'open'; 'completing' or 'aborting' while one request (the one that set it) does so.
    state VARCHAR(16) NOT NULL DEFAULT 'open',
    KEY eb_blob_uploads_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
