-- Multipart uploads in progress (blob-store's `service/uploads.rs`): what was declared at
-- creation, and the backend's own upload (S3's UploadId; the local store's parts folder).
-- A row lives until the upload is completed or aborted, or swept a day after creation.
CREATE TABLE eb_blob_uploads (
    id TEXT NOT NULL PRIMARY KEY,
    namespace TEXT NOT NULL,
    object_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    part_size BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NULL,
    backend_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    -- 'open'; 'completing' or 'aborting' while one request (the one that set it) does so.
    state TEXT NOT NULL DEFAULT 'open'
);
CREATE INDEX eb_blob_uploads_expires ON eb_blob_uploads (expires_at);
