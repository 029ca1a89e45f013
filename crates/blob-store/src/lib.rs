//! Event Bridge shared storage.
//!
//! - [`ObjectKey`]: the key rules (NFC, at most 1,024 bytes, no `.`/`..` segments, no
//!   leading `/`, `//`, backslash or control characters), refused rather than rewritten.
//! - [`media`]: the media type an upload is stored with and a download served with.
//! - [`namespace`]: namespaces with their prefixes, size limits and content types.
//! - [`BlobStore`]: the trait, streaming in and out, with [`LocalStore`] (atomic writes
//!   in a folder, the embedded default).
//! - [`BlobService`]: namespaces over a store, and URLs signed by the gateway.

mod key;
mod local;
pub mod media;
pub mod namespace;
#[cfg(feature = "s3")]
mod s3;
mod service;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use key::{KeyError, MAX_KEY_BYTES, ObjectKey};
pub use local::{LocalStore, STALE_TEMP_FILE_AGE};
#[cfg(feature = "s3")]
pub use s3::{MIN_PART_SIZE, S3Config, S3Store};
pub use service::{BlobService, MAX_PRESIGN_SECS, SignedRequest};
pub use store::{
    BlobError, BlobStore, ByteRange, ByteStream, IfMatch, ListOptions, ListPage, ListedObject, ObjectBody, ObjectMeta,
    PutOptions,
};
