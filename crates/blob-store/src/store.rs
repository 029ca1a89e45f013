//! The stores: the `BlobStore` trait its backends implement ([`crate::LocalStore`],
//! [`crate::S3Store`]), and the audit trail of storage events (the one place blob-store
//! writes to the database).

use futures_util::future::BoxFuture;
use shared_db::{DbError, DbPool};

use crate::ObjectKey;
use crate::model::{
    BlobError, ByteRange, ByteStream, IfMatch, ListOptions, ListPage, ObjectBody, ObjectMeta, PresignedUrl, PutOptions,
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
