//! Hand-written diesel tables with portable types: `Timestamp` is `DATETIME(6)` on MySQL
//! and `TIMESTAMP` on SQLite, so one definition serves both backends.

diesel::table! {
    #[sql_name = "eb_api_keys"]
    api_keys (id) {
        id -> Text,
        name -> Text,
        prefix -> Text,
        digest -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    #[sql_name = "eb_jobs"]
    jobs (id) {
        id -> Text,
        queue -> Text,
        payload -> Text,
        status -> Text,
        priority -> Integer,
        attempts -> Integer,
        max_attempts -> Integer,
        run_at -> Timestamp,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        dedup_key -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        ordering_key -> Nullable<Text>,
    }
}

diesel::table! {
    #[sql_name = "eb_idempotency_keys"]
    idempotency_keys (owner, scope, idem_key) {
        owner -> Text,
        scope -> Text,
        idem_key -> Text,
        request_hash -> Text,
        resource_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    #[sql_name = "eb_events"]
    events (id) {
        id -> Text,
        occurred_at -> Timestamp,
        event_type -> Text,
        actor -> Nullable<Text>,
        subject -> Nullable<Text>,
        data -> Text,
        /// The bridge's outbox: true until the bridge has queued the event's deliveries,
        /// then null.
        undispatched -> Nullable<Bool>,
    }
}

diesel::table! {
    #[sql_name = "eb_documents"]
    documents (collection, id) {
        collection -> Text,
        id -> Text,
        version -> BigInt,
        body -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    #[sql_name = "eb_collection_schemas"]
    collection_schemas (collection) {
        collection -> Text,
        json_schema -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Multipart uploads in progress (blob-store).
    #[sql_name = "eb_blob_uploads"]
    blob_uploads (id) {
        id -> Text,
        namespace -> Text,
        object_key -> Text,
        size -> BigInt,
        part_size -> BigInt,
        content_type -> Text,
        sha256 -> Nullable<Text>,
        /// The backend's upload: S3's UploadId, or the local store's parts folder.
        backend_id -> Text,
        actor -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        /// `open`, or `completing` / `aborting` while one request does so.
        state -> Text,
    }
}
