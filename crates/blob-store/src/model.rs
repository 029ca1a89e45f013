//! The storage model: objects and their metadata, write options and conditions, ranges,
//! listings, what the use cases take and give ([`Grant`], [`BlobInfo`], [`ListRequest`],
//! [`Listing`] of [`BlobEntry`], [`PresignRequest`], [`PresignedLink`], [`SignedRequest`]) and the one
//! error ([`BlobError`]): the backends' failures and the use cases' refusals.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use shared_db::DbError;
use shared_db::paging::PagingError;

use crate::KeyError;

mod uploads;
pub use uploads::{Assembly, CompleteUpload, CreateUpload, PartRef, PartUrl, ReceivedPart, UploadInfo};

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

/// Why a storage operation failed or was refused.
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
    /// No namespace has that name.
    #[error("no namespace is called `{0}`")]
    NamespaceNotFound(String),
    /// The key breaks one of the key rules.
    #[error("{0} (rule: {rule})", rule = .0.rule())]
    InvalidKey(#[from] KeyError),
    /// The namespace does not accept the content type.
    #[error("`{content_type}` is not accepted in `{namespace}`")]
    TypeNotAllowed {
        /// The type refused.
        content_type: String,
        /// The namespace's name.
        namespace: String,
    },
    /// A field of a request is not valid (a presign's method, expiry, type or length).
    #[error("{message}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: &'static str,
    },
    /// A listing's prefix or delimiter is not valid.
    #[error("{0}")]
    InvalidQuery(&'static str),
    /// A listing's `limit` or `cursor` is refused by the paging rule.
    #[error(transparent)]
    Paging(#[from] PagingError),
    /// A signed URL that does not allow this request (a bad or expired signature, or
    /// another method, type or length than it was signed for).
    #[error("{0}")]
    SignatureInvalid(String),
    /// The refusal `source`, caused by the request's field `field`.
    #[error("{source}")]
    OnField {
        /// The field at fault.
        field: &'static str,
        /// Why it was refused.
        source: Box<BlobError>,
    },
    /// No multipart upload has that id in the namespace (or it was completed, aborted or
    /// expired).
    #[error("no upload has that id in this namespace (it may have been completed, aborted or expired)")]
    UploadNotFound,
    /// A multipart upload cannot be completed as asked (`code`: `invalid_parts`,
    /// `size_mismatch` or `checksum_mismatch`); nothing was stored and the upload stays.
    #[error("{message}")]
    UploadRefused {
        /// The problem's code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The upload cannot take this request now (`code`: `upload_completing` while another
    /// request completes or aborts it; `too_many_uploads` when the namespace holds too
    /// many open uploads); nothing changed.
    #[error("{message}")]
    UploadConflict {
        /// The problem's code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The database (the audit trail) failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// Something that cannot fail did (a URL that does not parse).
    #[error("{0}")]
    Internal(String),
}

impl BlobError {
    /// This refusal, blamed on the request's field `field`.
    pub fn on_field(self, field: &'static str) -> Self {
        BlobError::OnField {
            field,
            source: Box::new(self),
        }
    }
}

/// A URL signed by the storage itself (S3's SigV4 query signing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUrl {
    /// The URL.
    pub url: String,
    /// Headers the request must send.
    pub headers: Vec<(String, String)>,
}

/// What an authorised request may do: who acts, and what a signed URL binds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Who acts, for the audit trail (`signed_url` for a signed URL).
    pub actor: String,
    /// The content type a signed PUT must send.
    pub content_type: Option<String>,
    /// The `Content-Length` a signed PUT must send.
    pub content_length: Option<u64>,
}

impl Grant {
    /// The grant of an API key acting as `actor` (nothing bound).
    pub fn actor(actor: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            ..Self::default()
        }
    }
}

/// The checks a write makes on its body and on the current object.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// `Content-MD5` the body must match.
    pub expected_md5: Option<[u8; 16]>,
    /// SHA-256 the body must match.
    pub expected_sha256: Option<[u8; 32]>,
    /// Refuse to overwrite an existing object (`If-None-Match: *`).
    pub if_none_match: bool,
    /// Replace only a current version this accepts (`If-Match`).
    pub if_match: Option<IfMatch>,
}

/// A stored object, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Blob))]
pub struct BlobInfo {
    /// Its namespace.
    pub namespace: String,
    /// Its key in the namespace.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag (quoted hex MD5).
    pub etag: String,
    /// Media type.
    pub content_type: String,
    /// Hex SHA-256.
    pub sha256: String,
    /// Last written.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub last_modified: DateTime<Utc>,
}

/// Listing parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// `/` to group keys into folders.
    pub delimiter: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobEntry {
    /// Its key in the namespace.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag (quoted).
    pub etag: String,
    /// Last written.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub last_modified: DateTime<Utc>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = BlobList))]
pub struct Listing {
    /// Objects in key order.
    pub objects: Vec<BlobEntry>,
    /// Key groups up to the next delimiter (`photos/2026/`).
    pub common_prefixes: Vec<String>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A request for a signed URL.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PresignRequest {
    /// The object's key.
    pub key: String,
    /// `GET` or `PUT`.
    pub method: String,
    /// Seconds the URL stays valid (1 to 604800; default 3600).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// For `PUT`: the content type the upload must send (default: the type of the key's
    /// extension, such as `image/png` for `.png`, else `application/octet-stream`); the
    /// type the object would be stored with must be one the namespace accepts.
    #[serde(default)]
    pub content_type: Option<String>,
    /// For `PUT` (required): the upload's size in bytes, at most the namespace's limit;
    /// the upload must send exactly this `Content-Length`.
    #[serde(default)]
    pub content_length: Option<u64>,
}

/// A signed URL: no API key needed to use it until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Presigned))]
pub struct PresignedLink {
    /// The URL.
    pub url: String,
    /// `GET` or `PUT`.
    pub method: String,
    /// Headers the request must send.
    pub headers: BTreeMap<String, String>,
    /// When it stops working.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub expires_at: DateTime<Utc>,
}

/// The query parameters of a URL the gateway signed (`X-EB-*`, see
/// [`crate::BlobService::presign`]), as a request carries them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SignedQuery {
    /// `X-EB-Method`.
    #[serde(rename = "X-EB-Method")]
    pub method: Option<String>,
    /// `X-EB-Expires`: unix seconds.
    #[serde(rename = "X-EB-Expires")]
    pub expires: Option<i64>,
    /// `X-EB-Content-Type`.
    #[serde(rename = "X-EB-Content-Type", default)]
    pub content_type: Option<String>,
    /// `X-EB-Content-Length`.
    #[serde(rename = "X-EB-Content-Length", default)]
    pub content_length: Option<u64>,
    /// `X-EB-Signature`: hex HMAC-SHA256.
    #[serde(rename = "X-EB-Signature")]
    pub signature: Option<String>,
}

impl SignedQuery {
    /// The signed request, when the query carries a method, an expiry and a signature.
    pub fn signed(self) -> Option<SignedRequest> {
        Some(SignedRequest {
            method: self.method?,
            expires: self.expires?,
            content_type: self.content_type.unwrap_or_default(),
            content_length: self.content_length,
            signature: self.signature?,
        })
    }
}

/// A signed request the gateway will honour without an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// `GET` or `PUT`.
    pub method: String,
    /// Unix time it expires at.
    pub expires: i64,
    /// The content type a signed PUT must send (empty for any).
    pub content_type: String,
    /// The `Content-Length` a signed PUT must send (`None` for any).
    pub content_length: Option<u64>,
    /// Hex HMAC-SHA256.
    pub signature: String,
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
