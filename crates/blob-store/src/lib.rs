//! Event Bridge shared storage.
//!
//! - [`BlobService`]: the storage use cases over the namespaces' stores, one file each
//!   under `service/`: access (the scope a namespace wants, checked before it is looked
//!   up), put (the namespace's size, type and key rules), get and head, list (prefix,
//!   delimiter, the paging rule), presign (signed URLs, minted and checked through
//!   `shared_db::KeyRing`) and delete, each recording its audit event (`blob.written`,
//!   `blob.presigned`, `blob.deleted`).
//! - [`model`]: objects, options, listings, the use cases' inputs and outputs, and the one
//!   error [`BlobError`].
//! - [`ObjectKey`]: the key rules (NFC, at most 1,024 bytes, no `.`/`..` segments, no
//!   leading `/`, `//`, backslash or control characters), refused rather than rewritten.
//! - [`media`]: the media type an upload is stored with and a download served with (and
//!   whether it is shown inline).
//! - [`namespace`]: namespaces with their prefixes, size limits and content types.
//! - [`BlobService`]'s multipart uploads (`service/uploads.rs`): resumable uploads of
//!   large objects in parts sent straight to S3 or to the gateway's signed part URLs, and
//!   [`jobs`], the sweep that aborts those abandoned for a day.
//! - [`BlobStore`]: the trait, streaming in and out, with [`LocalStore`] (atomic writes
//!   in a folder, the embedded default) and [`S3Store`].

pub mod jobs;
mod key;
mod local;
pub mod media;
pub mod model;
pub mod namespace;
#[cfg(feature = "s3")]
mod s3;
mod service;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use key::{KeyError, MAX_KEY_BYTES, ObjectKey};
pub use local::{LocalStore, STALE_TEMP_FILE_AGE};
pub use model::{
    Assembly, BlobEntry, BlobError, BlobInfo, ByteRange, ByteStream, CompleteUpload, Conditions, CreateUpload, Grant,
    IfMatch, ListOptions, ListPage, ListRequest, ListedObject, Listing, ObjectBody, ObjectMeta, PartRef, PartUrl,
    PresignRequest, PresignedLink, PresignedUrl, PutOptions, ReceivedPart, SignedQuery, SignedRequest, UploadInfo,
};
#[cfg(feature = "s3")]
pub use s3::{MIN_PART_SIZE, S3Config, S3Store};
pub use service::BlobService;
pub use service::access::Access;
pub use service::get::Object;
pub use service::put::Upload;
pub use service::signed::{MAX_PRESIGN_SECS, UrlSigner};
pub use service::uploads::{
    DEFAULT_UPLOAD_PART, MAX_UPLOAD_PART, MAX_UPLOAD_PARTS, MIN_UPLOAD_PART, PartUpload, UPLOAD_ID_PATTERN,
    UPLOAD_LIFETIME, is_upload_id, plan_part_size,
};
pub use store::BlobStore;
