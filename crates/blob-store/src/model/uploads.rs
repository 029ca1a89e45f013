//! Multipart uploads as callers see them: the request that starts one ([`CreateUpload`]),
//! the upload with its part URLs and the parts received ([`UploadInfo`]), and the request
//! that completes it ([`CompleteUpload`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A request to start a multipart upload.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// The object's key.
    pub key: String,
    /// The object's size in bytes (at least 1, at most the namespace's limit).
    pub size: u64,
    /// The type to store (default: the type of the key's extension, else
    /// `application/octet-stream`; a generic type gives way to the key's); it must be one
    /// the namespace accepts.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The whole object's hex SHA-256. The local store checks it while assembling the
    /// parts (a mismatch stores nothing); S3 keeps it as the object's checksum without
    /// reading the object back (each part's MD5 `ETag` is what protects the transfer).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Bytes per part: 5 MiB to 5 GiB, at most 10,000 parts (default 8 MiB, grown to fit
    /// 10,000 parts).
    #[serde(default)]
    pub part_size: Option<u64>,
}

/// Where to send one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = UploadPartUrl))]
pub struct PartUrl {
    /// 1 to 10,000.
    pub number: u32,
    /// Where its bytes start in the object.
    pub offset: u64,
    /// Its size: `part_size`, the last part the rest.
    pub size: u64,
    /// The URL to send it to (no API key needed until the upload expires).
    pub url: String,
    /// `PUT`.
    pub method: String,
    /// Headers the request must send (besides `Content-Length`, which must be `size`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// A part the storage holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = UploadedPart))]
pub struct ReceivedPart {
    /// Its number.
    pub number: u32,
    /// Its entity tag: the quoted hex MD5 of its bytes.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = MultipartUpload))]
pub struct UploadInfo {
    /// The upload's id (unguessable).
    pub id: String,
    /// Its namespace.
    pub namespace: String,
    /// The key the object will have.
    pub key: String,
    /// The object's size in bytes.
    pub size: u64,
    /// Bytes per part (the last part holds the rest).
    pub part_size: u64,
    /// The type the object will be stored with.
    pub content_type: String,
    /// The declared hex SHA-256, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Started.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// When it is aborted unless completed (and its part URLs stop working).
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub expires_at: DateTime<Utc>,
    /// Every part, with a URL to send it to.
    pub parts: Vec<PartUrl>,
    /// The parts the storage holds, in order (empty when the upload starts).
    pub received: Vec<ReceivedPart>,
}

/// A part to assemble, as its `PUT` answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CompletedPart))]
#[serde(deny_unknown_fields)]
pub struct PartRef {
    /// Its number.
    pub number: u32,
    /// The `ETag` its `PUT` answered (quoted or not).
    pub etag: String,
}

/// The parts to assemble into the object, in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteUpload {
    /// Every part of the object, in ascending order of number.
    pub parts: Vec<PartRef>,
}

/// What assembling an upload's parts must hold to: checked by the store before (and, on
/// S3, after) the object is made.
#[derive(Debug, Clone)]
pub struct Assembly {
    /// The parts, in order, as the storage holds them (their etags checked).
    pub parts: Vec<ReceivedPart>,
    /// The media type to store.
    pub content_type: String,
    /// The declared size the object must have.
    pub size: u64,
    /// The declared SHA-256 (the local store verifies it; S3 stores it).
    pub sha256: Option<[u8; 32]>,
}
