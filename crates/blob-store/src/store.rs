//! The `BlobStore` trait and its types.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::ObjectKey;

/// A body, streamed.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// What is known of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Its full key in the store.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag: hex MD5 of the content, quoted as HTTP wants it.
    pub etag: String,
    /// Media type.
    pub content_type: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Last written.
    pub last_modified: DateTime<Utc>,
}

/// How to write.
#[derive(Debug, Clone)]
pub struct PutOptions {
    /// Media type to store.
    pub content_type: String,
    /// The body may not exceed this many bytes.
    pub max_size: u64,
    /// `Content-MD5` the body must match.
    pub expected_md5: Option<[u8; 16]>,
    /// SHA-256 the body must match.
    pub expected_sha256: Option<[u8; 32]>,
    /// Refuse to overwrite an existing object (`If-None-Match: *`).
    pub if_none_match: bool,
    /// Replace only a current version this accepts (`If-Match`); a missing object fails.
    pub if_match: Option<IfMatch>,
}

/// The versions a conditional write or delete accepts (`If-Match`, RFC 9110 §13.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: whatever version exists.
    Any,
    /// One of these entity tags, as sent (quoted; a weak one keeps its `W/`).
    Tags(Vec<String>),
}

impl IfMatch {
    /// Whether an object whose ETag is `current` (`None`: no object) satisfies this, by
    /// strong comparison: a weak tag never matches, and nothing matches a missing object.
    pub fn matches(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (_, None) => false,
            (IfMatch::Any, Some(_)) => true,
            (IfMatch::Tags(tags), Some(c)) => !c.starts_with("W/") && tags.iter().any(|t| t == c),
        }
    }

    /// The current object's metadata when it satisfies this; otherwise
    /// [`BlobError::PreconditionFailed`] (a missing object included). Other failures
    /// to read it pass through.
    pub fn check(&self, current: Result<ObjectMeta, BlobError>) -> Result<ObjectMeta, BlobError> {
        match current {
            Ok(meta) if self.matches(Some(&meta.etag)) => Ok(meta),
            Ok(meta) => Err(BlobError::PreconditionFailed {
                current: Some(meta.etag),
            }),
            Err(BlobError::NotFound) => Err(BlobError::PreconditionFailed { current: None }),
            Err(e) => Err(e),
        }
    }
}

/// A byte range of a `Range: bytes=` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start-`.
    From(u64),
    /// `start-end`, inclusive.
    Inclusive(u64, u64),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a single-range `Range` header value.
    pub fn parse(header: &str) -> Option<Self> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        match (a.trim(), b.trim()) {
            ("", n) => n.parse().ok().map(ByteRange::Suffix),
            (s, "") => s.parse().ok().map(ByteRange::From),
            (s, e) => {
                let (s, e) = (s.parse().ok()?, e.parse().ok()?);
                (s <= e).then_some(ByteRange::Inclusive(s, e))
            }
        }
    }

    /// The inclusive `(first, last)` bytes of an object of `size` bytes, or `None` when
    /// the range cannot be satisfied (answer 416).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        if size == 0 {
            return None;
        }
        match self {
            ByteRange::From(s) if s < size => Some((s, size - 1)),
            ByteRange::Inclusive(s, e) if s < size => Some((s, e.min(size - 1))),
            ByteRange::Suffix(n) if n > 0 => Some((size.saturating_sub(n), size - 1)),
            _ => None,
        }
    }
}

/// An object being read.
pub struct ObjectBody {
    /// Its metadata.
    pub meta: ObjectMeta,
    /// The inclusive byte range served, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// The bytes.
    pub body: ByteStream,
}

/// A listing request.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys by this after the prefix (usually `/`).
    pub delimiter: Option<char>,
    /// Only keys after this one.
    pub after: Option<String>,
    /// Page size.
    pub limit: usize,
}

/// An object as a listing shows it (S3 listings carry no content type or hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its full key in the store.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag, quoted.
    pub etag: String,
    /// Last written.
    pub last_modified: DateTime<Utc>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects, in key order.
    pub objects: Vec<ListedObject>,
    /// Groups of keys (`prefix` + segment + delimiter), in order.
    pub common_prefixes: Vec<String>,
    /// The last key or prefix of this page when there are more.
    pub next_after: Option<String>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No such object.
    #[error("no object has that key")]
    NotFound,
    /// `If-None-Match: *` and the object exists.
    #[error("the object already exists")]
    AlreadyExists,
    /// `If-Match` and the current version (its ETag; `None` when there is no object) is
    /// not one it accepts; nothing changed.
    #[error("the object's current version is not one the precondition accepts")]
    PreconditionFailed {
        /// The current ETag, when an object exists.
        current: Option<String>,
    },
    /// The body exceeded the limit; nothing was stored.
    #[error("the body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The body did not match the checksum sent with it; nothing was stored.
    #[error("the body does not match its {0}")]
    ChecksumMismatch(&'static str),
    /// The requested range lies outside the object (answer 416).
    #[error("the range cannot be served from an object of {size} bytes")]
    RangeNotSatisfiable {
        /// The object's size.
        size: u64,
    },
    /// This backend cannot store the key (for instance a segment too long for a file name).
    #[error("this store cannot hold that key: {0}")]
    KeyUnsupported(String),
    /// Reading the body failed (the client went away); nothing was stored.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// The backend failed.
    #[error("storage failed: {0}")]
    Backend(String),
}

/// A URL signed by the storage itself (S3's SigV4 query signing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUrl {
    /// The URL.
    pub url: String,
    /// Headers the request must send.
    pub headers: Vec<(String, String)>,
}

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

#[cfg(test)]
mod tests {
    use super::{ByteRange, IfMatch};

    #[test]
    fn if_match_compares_strongly() {
        let tags = IfMatch::Tags(vec!["\"a\"".into(), "W/\"b\"".into()]);
        assert!(tags.matches(Some("\"a\"")));
        assert!(!tags.matches(Some("\"b\"")), "a weak tag never matches");
        assert!(!tags.matches(Some("W/\"b\"")), "nor a weak current tag");
        assert!(!tags.matches(None));
        assert!(IfMatch::Any.matches(Some("\"z\"")));
        assert!(!IfMatch::Any.matches(None));
    }

    #[test]
    fn ranges_parse_and_resolve_like_http() {
        assert_eq!(ByteRange::parse("bytes=0-99"), Some(ByteRange::Inclusive(0, 99)));
        assert_eq!(ByteRange::parse("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(ByteRange::parse("bytes=-10"), Some(ByteRange::Suffix(10)));
        for bad in ["bytes=5-1", "bytes=a-b", "items=0-1", "bytes=0-1,4-5", "bytes=-"] {
            assert_eq!(ByteRange::parse(bad), None, "{bad}");
        }
        assert_eq!(ByteRange::Inclusive(0, 999).resolve(100), Some((0, 99)));
        assert_eq!(ByteRange::From(100).resolve(100), None);
        assert_eq!(ByteRange::Suffix(500).resolve(100), Some((0, 99)));
        assert_eq!(ByteRange::Suffix(0).resolve(100), None);
        assert_eq!(ByteRange::From(0).resolve(0), None);
    }
}
