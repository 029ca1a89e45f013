//! The stores: the `BlobStore` trait its backends implement ([`crate::LocalStore`],
//! [`crate::S3Store`]), and the audit trail of storage events (the one place blob-store
//! writes to the database), and the rows of multipart uploads in progress ([`uploads`]).

pub(crate) mod uploads;

use futures_util::future::BoxFuture;
use shared_db::{DbError, DbPool};

use crate::ObjectKey;
use crate::model::{
    Assembly, BlobError, ByteRange, ByteStream, IfMatch, ListOptions, ListPage, ObjectBody, ObjectMeta, PresignedUrl,
    PutOptions, ReceivedPart,
};

/// Object storage.
pub trait BlobStore: Send + Sync + 'static {
    /// A URL for one `GET` or `PUT` of `key` valid for `expires_in`, when the backend can
    /// sign one itself; `None` when the gateway must sign (the local backend). A `PUT`'s
    /// `content_type` and `content_length` are signed: the upload must send exactly them.
    fn presign<'a>(
        &'a self,
        _key: &'a ObjectKey,
        _method: &'a str,
        _expires_in: std::time::Duration,
        _content_type: Option<&'a str>,
        _content_length: Option<u64>,
    ) -> BoxFuture<'a, Result<Option<PresignedUrl>, BlobError>> {
        Box::pin(async { Ok(None) })
    }

    /// Stores `body` under `key`, all or nothing.
    fn put<'a>(
        &'a self,
        key: &'a ObjectKey,
        body: ByteStream,
        options: PutOptions,
    ) -> BoxFuture<'a, Result<ObjectMeta, BlobError>>;

    /// Streams the object (or a byte range of it) with its metadata.
    fn get<'a>(&'a self, key: &'a ObjectKey, range: Option<ByteRange>) -> BoxFuture<'a, Result<ObjectBody, BlobError>>;

    /// The object's metadata.
    fn head<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<ObjectMeta, BlobError>>;

    /// Deletes the object; false when there was none.
    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<bool, BlobError>> {
        self.delete_if(key, None)
    }

    /// Deletes the object when `if_match` (if any) accepts its current version, else
    /// [`BlobError::PreconditionFailed`] with nothing deleted; false when there was none
    /// and no condition. How atomic the check and the delete are depends on the backend.
    fn delete_if<'a>(
        &'a self,
        key: &'a ObjectKey,
        if_match: Option<&'a IfMatch>,
    ) -> BoxFuture<'a, Result<bool, BlobError>>;

    /// Lists objects (and common prefixes) in key order.
    fn list<'a>(&'a self, options: ListOptions) -> BoxFuture<'a, Result<ListPage, BlobError>>;

    /// Copies an object.
    fn copy<'a>(&'a self, from: &'a ObjectKey, to: &'a ObjectKey) -> BoxFuture<'a, Result<ObjectMeta, BlobError>>;

    /// Starts a multipart upload of `key` (stored, once complete, as `content_type` with
    /// `sha256` as its checksum when declared); the backend's id of it.
    fn multipart_create<'a>(
        &'a self,
        key: &'a ObjectKey,
        content_type: &'a str,
        sha256: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, BlobError>>;

    /// A URL to `PUT` part `number` (exactly `length` bytes) of the upload `upload`
    /// straight to the storage until `expires_in` from now; `None` when the part goes
    /// through the gateway ([`Self::multipart_put_part`], the local backend).
    fn multipart_part_url<'a>(
        &'a self,
        key: &'a ObjectKey,
        upload: &'a str,
        number: u32,
        length: u64,
        expires_in: std::time::Duration,
    ) -> BoxFuture<'a, Result<Option<PresignedUrl>, BlobError>>;

    /// Stores part `number` of the upload from `body`, which must hold exactly `length`
    /// bytes, replacing an earlier copy of it; its ETag is the quoted hex MD5 of its bytes.
    fn multipart_put_part<'a>(
        &'a self,
        key: &'a ObjectKey,
        upload: &'a str,
        number: u32,
        length: u64,
        body: ByteStream,
    ) -> BoxFuture<'a, Result<ReceivedPart, BlobError>>;

    /// The parts the storage holds of the upload, in order;
    /// [`BlobError::UploadNotFound`] when it has no such upload.
    fn multipart_parts<'a>(
        &'a self,
        key: &'a ObjectKey,
        upload: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ReceivedPart>, BlobError>>;

    /// Makes the object from `assembly`'s parts (already checked against what the storage
    /// holds) and ends the upload; the object's size must be `assembly.size`, or nothing
    /// stays and the upload is kept.
    fn multipart_complete<'a>(
        &'a self,
        key: &'a ObjectKey,
        upload: &'a str,
        assembly: Assembly,
    ) -> BoxFuture<'a, Result<ObjectMeta, BlobError>>;

    /// Ends the upload and drops its parts (done when there was none).
    fn multipart_abort<'a>(&'a self, key: &'a ObjectKey, upload: &'a str) -> BoxFuture<'a, Result<(), BlobError>>;

    /// Drops what the store keeps of the upload whose backend id is `upload` when its
    /// namespace (and so its key) is no longer known: the local store removes the upload's
    /// parts folder (ids are unique, so asking a store that never had it is harmless); S3
    /// needs the key, so its parts are left to the bucket's lifecycle rule
    /// (`AbortIncompleteMultipartUpload`).
    fn multipart_forget<'a>(&'a self, upload: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        let _ = upload;
        Box::pin(async { Ok(()) })
    }
}

/// Appends a storage event (`blob.written`, `blob.deleted`, `blob.presigned`) about
/// `subject` to the audit trail.
pub(crate) async fn record_event(
    pool: &DbPool,
    event_type: &str,
    actor: &str,
    subject: &str,
    data: serde_json::Value,
) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    shared_db::events::record(&mut conn, event_type, actor, subject, data).await
}
