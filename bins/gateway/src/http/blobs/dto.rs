//! The storage API's bodies and queries, as the OpenAPI document shows them.

use blob_store::BlobInfo;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A stored object, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Blob {
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
    pub last_modified: chrono::DateTime<Utc>,
}

/// An object in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlobEntry {
    /// Its key in the namespace.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag (quoted).
    pub etag: String,
    /// Last written.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub last_modified: chrono::DateTime<Utc>,
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlobList {
    /// Objects in key order.
    pub objects: Vec<BlobEntry>,
    /// Key groups up to the next delimiter (`photos/2026/`).
    pub common_prefixes: Vec<String>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// `/` to group keys into folders.
    pub delimiter: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
}

/// A request for a signed URL.
#[derive(Debug, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct Presigned {
    /// The URL.
    pub url: String,
    /// `GET` or `PUT`.
    pub method: String,
    /// Headers the request must send.
    pub headers: std::collections::BTreeMap<String, String>,
    /// When it stops working.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub expires_at: chrono::DateTime<Utc>,
}

/// The signature query parameters of a gateway-signed URL.
#[derive(Debug, Deserialize)]
pub(super) struct SignatureQuery {
    #[serde(rename = "X-EB-Method")]
    pub(super) method: Option<String>,
    #[serde(rename = "X-EB-Expires")]
    pub(super) expires: Option<i64>,
    #[serde(rename = "X-EB-Content-Type", default)]
    pub(super) content_type: Option<String>,
    #[serde(rename = "X-EB-Content-Length", default)]
    pub(super) content_length: Option<u64>,
    #[serde(rename = "X-EB-Signature")]
    pub(super) signature: Option<String>,
}

impl From<BlobInfo> for Blob {
    fn from(b: BlobInfo) -> Self {
        Self {
            namespace: b.namespace,
            key: b.key,
            size: b.size,
            etag: b.etag,
            content_type: b.content_type,
            sha256: b.sha256,
            last_modified: b.last_modified,
        }
    }
}
