//! `/api/v1/blobs`: the shared storage of clients, the web and AI services. Bodies stream
//! through in both directions; keys follow `blob_store::ObjectKey`'s rules; reads need
//! `blobs:read:<namespace>`, writes `blobs:write:<namespace>`, or a URL the gateway signed.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, route, web};
use blob_store::namespace::{self, Namespace};
use blob_store::{
    BlobError, BlobStore, ByteRange, IfMatch, KeyError, ListOptions, ObjectKey, ObjectMeta, PutOptions, SignedRequest,
};
use chrono::Utc;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::Json;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::http::data::precondition_failed;
use crate::state::AppState;

mod form;

/// Media types served inline; everything else is sent as an attachment.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "application/pdf",
    "text/plain",
    "audio/mpeg",
    "audio/ogg",
    "video/mp4",
    "video/webm",
];

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
    /// Page size (1 to 1000, default 100).
    pub limit: Option<usize>,
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
struct SignatureQuery {
    #[serde(rename = "X-EB-Method")]
    method: Option<String>,
    #[serde(rename = "X-EB-Expires")]
    expires: Option<i64>,
    #[serde(rename = "X-EB-Content-Type", default)]
    content_type: Option<String>,
    #[serde(rename = "X-EB-Content-Length", default)]
    content_length: Option<u64>,
    #[serde(rename = "X-EB-Signature")]
    signature: Option<String>,
}

fn blob_error(e: BlobError) -> ApiError {
    match e {
        BlobError::NotFound => ApiError::not_found("object_not_found", "no object has that key"),
        BlobError::AlreadyExists => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "object_exists",
            "If-None-Match: * and the object exists",
        ),
        BlobError::PreconditionFailed { current } => {
            let detail = match &current {
                Some(etag) => format!("the object's current ETag is {etag}"),
                None => "no object has that key".to_owned(),
            };
            precondition_failed(detail, current.as_deref())
        }
        BlobError::TooLarge { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the namespace takes objects up to {limit} bytes"),
        ),
        BlobError::ChecksumMismatch(which) => {
            ApiError::bad_request("checksum_mismatch", format!("the body does not match its {which}"))
        }
        BlobError::RangeNotSatisfiable { size } => ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("the object has {size} bytes"),
        )
        .with_header(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{size}")).unwrap_or(HeaderValue::from_static("bytes */0")),
        ),
        BlobError::KeyUnsupported(m) => ApiError::bad_request("invalid_key", m).for_field("key"),
        BlobError::Interrupted(m) => ApiError::bad_request("upload_interrupted", m),
        BlobError::Backend(m) => ApiError::backend_unavailable(
            "storage_unavailable",
            "the storage backend did not answer or failed; try again",
            m,
        ),
    }
}

/// A key rule broken, as a 400 naming it.
fn key_problem(e: KeyError) -> ApiError {
    ApiError::bad_request("invalid_key", format!("{e} (rule: {})", e.rule())).for_field("key")
}

fn parse_key(raw: &str) -> Result<ObjectKey, ApiError> {
    ObjectKey::parse(raw).map_err(key_problem)
}

/// Refuses `content_type` when the namespace does not accept it (415).
fn type_allowed(ns: &Namespace, content_type: &str) -> Result<(), ApiError> {
    if ns.allows(content_type) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "content_type_not_allowed",
        format!("`{content_type}` is not accepted in `{}`", ns.name),
    ))
}

/// The type an upload of `declared` type to `key` is stored with (a generic or missing
/// one gives way to the key's extension), when the namespace accepts that final type.
fn content_type_for(ns: &Namespace, declared: Option<&str>, key: &ObjectKey) -> Result<String, ApiError> {
    let content_type = blob_store::media::stored_type(declared, key);
    type_allowed(ns, &content_type)?;
    Ok(content_type)
}

/// The key of a `/{namespace}/{key}` route. Actix decodes the path lossily (`%ff` becomes
/// U+FFFD, so `%ff%fe` and `%fe%ff` would be one key): a path whose bytes are not UTF-8
/// once percent-decoded is refused instead.
fn path_key(req: &HttpRequest, decoded: &str) -> Result<ObjectKey, ApiError> {
    if percent_encoding::percent_decode_str(req.uri().path())
        .decode_utf8()
        .is_err()
    {
        return Err(key_problem(KeyError::NotUtf8));
    }
    parse_key(decoded)
}

/// Refuses a query string holding a parameter that is not UTF-8 once percent-decoded
/// (Actix's query parser would decode it lossily).
fn utf8_query(req: &HttpRequest) -> Result<(), ApiError> {
    if percent_encoding::percent_decode_str(req.query_string())
        .decode_utf8()
        .is_err()
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "a query parameter is not UTF-8 once percent-decoded (rule: not_utf8)",
        ));
    }
    Ok(())
}

fn namespace<'a>(state: &'a AppState, name: &str) -> Result<(&'a Namespace, &'a dyn BlobStore), ApiError> {
    state
        .blobs
        .namespace(name)
        .ok_or_else(|| ApiError::not_found("namespace_not_found", format!("no namespace is called `{name}`")))
}

/// A key as a URL path: each segment percent-encoded (spaces, non-ASCII, `?`, `#`, `%`),
/// the `/` between them kept. Headers such as `Location` carry only ASCII.
fn key_path(key: &ObjectKey) -> String {
    key.segments()
        .map(|s| {
            url::form_urlencoded::byte_serialize(s.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The `Location` of an object.
fn location(ns: &Namespace, key: &ObjectKey) -> String {
    format!("/api/v1/blobs/{}/{}", ns.name, key_path(key))
}

fn blob(state: &AppState, ns: &Namespace, meta: ObjectMeta) -> Blob {
    Blob {
        namespace: ns.name.clone(),
        key: state.blobs.public_key(ns, &meta.key).to_owned(),
        size: meta.size,
        etag: meta.etag,
        content_type: meta.content_type,
        sha256: meta.sha256,
        last_modified: meta.last_modified,
    }
}

/// What an authorised request may do.
struct Grant {
    /// Who acts, for the audit trail.
    actor: String,
    /// The content type a signed PUT must send.
    content_type: Option<String>,
    /// The `Content-Length` a signed PUT must send.
    content_length: Option<u64>,
}

/// Authorises with an API key holding `scope`, or with a URL signed for `method`. This
/// runs before the namespace is looked up, so a caller without a key or a good signature
/// gets the same answer whether or not namespace `ns_name` exists.
async fn authorise(
    req: &HttpRequest,
    state: &AppState,
    ns_name: &str,
    key: &ObjectKey,
    method: &str,
    scope: &str,
) -> Result<Grant, ApiError> {
    utf8_query(req)?;
    let q = web::Query::<SignatureQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    if let (Some(m), Some(expires), Some(signature)) = (&q.method, q.expires, &q.signature) {
        let signed = SignedRequest {
            method: m.clone(),
            expires,
            content_type: q.content_type.clone().unwrap_or_default(),
            content_length: q.content_length,
            signature: signature.clone(),
        };
        if signed.method != method {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "signature_invalid",
                "the URL was signed for another method",
            ));
        }
        state
            .blobs
            .verify(ns_name, key, &signed, Utc::now().timestamp())
            .map_err(|why| ApiError::new(StatusCode::FORBIDDEN, "signature_invalid", why))?;
        return Ok(Grant {
            actor: "signed_url".to_owned(),
            content_length: signed.content_length,
            content_type: (!signed.content_type.is_empty()).then_some(signed.content_type),
        });
    }
    let principal = <Principal as actix_web::FromRequest>::extract(req).await?;
    principal.require(scope)?;
    Ok(Grant {
        actor: principal.actor(),
        content_type: None,
        content_length: None,
    })
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The entity tags of an `If-Match` / `If-None-Match` list (RFC 9110 §8.8.3: each
/// `"opaque"` or `W/"opaque"`, comma-separated), as sent; `None` when malformed.
fn entity_tags(value: &str) -> Option<Vec<String>> {
    let mut tags = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let weak = rest.starts_with("W/");
        let quoted = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"')?;
        let end = quoted.find('"')?;
        let opaque = &quoted[..end];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        tags.push(format!("{}\"{opaque}\"", if weak { "W/" } else { "" }));
        rest = quoted[end + 1..].trim_start();
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    (!tags.is_empty()).then_some(tags)
}

/// The request's `If-Match` (every field line of it, joined), or a 400 when malformed.
fn if_match(req: &HttpRequest) -> Result<Option<IfMatch>, ApiError> {
    let mut lines = Vec::new();
    for v in req.headers().get_all(header::IF_MATCH) {
        lines.push(v.to_str().map_err(|_| bad_if_match())?);
    }
    if lines.is_empty() {
        return Ok(None);
    }
    let joined = lines.join(",");
    if joined.trim() == "*" {
        return Ok(Some(IfMatch::Any));
    }
    entity_tags(&joined)
        .map(|t| Some(IfMatch::Tags(t)))
        .ok_or_else(bad_if_match)
}

fn bad_if_match() -> ApiError {
    ApiError::bad_request(
        "invalid_precondition",
        "If-Match takes * or a list of ETags such as \"9e107d9d372bb6826bd81d3542a419d6\"",
    )
}

/// Whether `If-None-Match` holds a tag of the current object (weak comparison, as RFC
/// 9110 §13.1.2 wants for it) or `*`.
fn none_match_hits(req: &HttpRequest, etag: &str) -> bool {
    req.headers().get_all(header::IF_NONE_MATCH).any(|v| {
        v.to_str().is_ok_and(|v| {
            v.trim() == "*"
                || entity_tags(v).is_some_and(|tags| tags.iter().any(|t| t.trim_start_matches("W/") == etag))
        })
    })
}

/// Whether a `Range` may be served under the request's `If-Range` (RFC 9110 §13.1.5):
/// true without one; with an ETag, only when it is the current one by strong comparison
/// (a weak tag never is). A date, or anything else, is false: the whole object is sent.
/// Last-Modified has one-second resolution, so two versions written within a second
/// share it and a date cannot tell them apart; every answer carries a strong ETag, which
/// RFC 9110 asks clients to send instead.
fn if_range_holds(req: &HttpRequest, current: &ObjectMeta) -> bool {
    match req.headers().get(header::IF_RANGE) {
        None => true,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(entity_tags)
            .is_some_and(|tags| tags.len() == 1 && IfMatch::Tags(tags).matches(Some(&current.etag))),
    }
}

/// Stores an object from the raw body (streamed; never held whole).
///
/// A missing or generic `Content-Type` (`application/octet-stream`,
/// `binary/octet-stream`, `application/x-www-form-urlencoded`) is replaced by the type of
/// the key's extension (`text/plain` for `.txt`; unknown: `application/octet-stream`);
/// the namespace's allowed types are checked against that final type.
#[utoipa::path(
    tag = "blobs",
    params(
        ("namespace" = String, Path, description = "Namespace (`client`, `web`, `ai`, ...)"),
        ("key" = String, Path, description = "Object key: UTF-8, `/` separates folders"),
        ("Content-MD5" = Option<String>, Header, description = "Base64 MD5 the body must match"),
        ("x-checksum-sha256" = Option<String>, Header, description = "Hex or base64 SHA-256 the body must match"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only, refuse to overwrite"),
        ("If-Match" = Option<String>, Header, description = "`*` or ETags: replace only an existing object whose current ETag is one of these (strong comparison: a weak `W/` tag never matches)"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("api_key" = ["blobs:write"])),
    responses(
        (status = 201, description = "Stored", body = Blob),
        (status = 400, description = "Bad key, checksum mismatch or interrupted upload", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the namespace's write scope, or a bad signature (or another `Content-Type` or `Content-Length` than the URL was signed for)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such namespace", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`object_exists`: If-None-Match: * and the object exists; `precondition_failed`: If-Match and the object is missing or at another ETag (the current one is returned). Nothing was stored", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over the namespace's size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content type not allowed in the namespace", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/{namespace}/{key:.*}")]
async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (ns_name, raw_key) = path.into_inner();
    let key = path_key(&req, &raw_key)?;
    let grant = authorise(&req, &state, &ns_name, &key, "PUT", &namespace::write_scope(&ns_name)).await?;
    let (ns, store) = namespace(&state, &ns_name)?;
    let sent_type = header_str(&req, "content-type");
    if let Some(required) = grant.content_type
        && required != sent_type.unwrap_or(blob_store::media::OCTET_STREAM)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signature_invalid",
            format!("the URL was signed for Content-Type {required}"),
        ));
    }
    // A signed length must be sent as `Content-Length` (Actix then reads exactly that
    // many bytes); a chunked body cannot be held to it.
    let sent_length = header_str(&req, "content-length").and_then(|v| v.parse::<u64>().ok());
    if let Some(required) = grant.content_length
        && sent_length != Some(required)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signature_invalid",
            format!("the URL was signed for Content-Length {required}"),
        ));
    }
    let content_type = content_type_for(ns, sent_type, &key)?;
    if let Some(len) = sent_length
        && len > ns.max_size
    {
        return Err(blob_error(BlobError::TooLarge { limit: ns.max_size }));
    }
    let expected_md5 = match header_str(&req, "content-md5") {
        Some(v) => Some(
            data_encoding::BASE64
                .decode(v.trim().as_bytes())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_checksum", "Content-MD5 must be the base64 of 16 bytes")
                })?,
        ),
        None => None,
    };
    let expected_sha256 = match header_str(&req, "x-checksum-sha256") {
        Some(v) => Some(
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(v.trim().as_bytes())
                .or_else(|_| data_encoding::BASE64.decode(v.trim().as_bytes()))
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_checksum",
                        "x-checksum-sha256 must be hex or base64 of 32 bytes",
                    )
                })?,
        ),
        None => None,
    };
    let if_none_match = match header_str(&req, "if-none-match") {
        Some("*") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_precondition",
                "only If-None-Match: * is supported on PUT",
            ));
        }
        None => false,
    };
    let if_match = if_match(&req)?;
    let storage_key = state.blobs.storage_key(ns, &key).map_err(blob_error)?;
    let options = PutOptions {
        content_type,
        max_size: grant.content_length.map_or(ns.max_size, |n| n.min(ns.max_size)),
        expected_md5,
        expected_sha256,
        if_none_match,
        if_match,
    };
    let stored = pump_into_store(payload, store, &storage_key, options).await;
    let meta = stored.map_err(blob_error)?;
    record_blob_event(&state, "blob.written", &grant.actor, ns, &key, Some(&meta)).await;
    let etag = meta.etag.clone();
    Ok(HttpResponse::Created()
        .insert_header((header::ETAG, etag))
        .insert_header((header::LOCATION, location(ns, &key)))
        .json(blob(&state, ns, meta)))
}

/// Appends `blob.written` / `blob.deleted` to the audit trail. The object store is not in
/// the database's transaction, so this follows the change; a failure is logged, never
/// turned into a failed request for a write that happened.
async fn record_blob_event(
    state: &AppState,
    event_type: &str,
    actor: &str,
    ns: &Namespace,
    key: &ObjectKey,
    meta: Option<&ObjectMeta>,
) {
    let data = match meta {
        Some(m) => {
            serde_json::json!({ "size": m.size, "etag": m.etag, "content_type": m.content_type, "sha256": m.sha256 })
        }
        None => serde_json::json!({}),
    };
    let subject = format!("blob:{}/{key}", ns.name);
    let recorded = match state.pool.get().await {
        Ok(mut conn) => shared_db::events::record(&mut conn, event_type, actor, &subject, data).await,
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        tracing::warn!(error = %e, event_type, subject, "could not record a storage event");
    }
}

/// Streams `source` into the store. Actix's bodies cannot leave their thread, so they are
/// pumped through a small bounded channel whose receiving end is the store's (sendable)
/// body stream; memory stays bounded by the channel and the store's part size.
async fn pump_into_store<S, E>(
    mut source: S,
    store: &dyn BlobStore,
    key: &ObjectKey,
    options: PutOptions,
) -> Result<ObjectMeta, BlobError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let pump = async move {
        while let Some(chunk) = source.next().await {
            let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let (_, stored) = futures_util::join!(pump, store.put(key, tokio_stream_from(rx), options));
    stored
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> blob_store::ByteStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Streams an object; `Range` gives 206 (or 416), `If-None-Match` 304. HEAD answers the
/// same headers without the body.
///
/// A failed `If-Match` answers 412. With `If-Range`, the range is served only while the
/// object is still the version of that ETag; otherwise the whole current object is sent
/// (200). Text (`text/*`, JSON, JavaScript) stored without a charset is served with
/// `; charset=utf-8`.
#[utoipa::path(
    tag = "blobs",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("key" = String, Path, description = "Object key"),
        ("Range" = Option<String>, Header, description = "`bytes=first-last`, `bytes=first-` or `bytes=-suffix`"),
        ("If-None-Match" = Option<String>, Header, description = "ETags or `*`: 304 when one still matches (weak comparison)"),
        ("If-Match" = Option<String>, Header, description = "`*` or ETags: 412 unless the current ETag is one of these (strong comparison)"),
        ("If-Range" = Option<String>, Header, description = "An ETag: serve `Range` only if it is still the current one (strong comparison); otherwise, or for a weak tag or a date, the whole object (200)"),
    ),
    security(("api_key" = ["blobs:read"])),
    responses(
        (status = 200, description = "The object", content_type = "application/octet-stream"),
        (status = 206, description = "Part of it", content_type = "application/octet-stream"),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Bad key or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the namespace's read scope, or a bad signature", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such namespace or object", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match and the current ETag is not one of those given (the current one is returned)", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "Range outside the object", body = Problem, content_type = "application/problem+json"),
    )
)]
#[route("/{namespace}/{key:.*}", method = "GET", method = "HEAD")]
async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (ns_name, raw_key) = path.into_inner();
    let key = path_key(&req, &raw_key)?;
    authorise(&req, &state, &ns_name, &key, "GET", &namespace::read_scope(&ns_name)).await?;
    let (ns, store) = namespace(&state, &ns_name)?;
    let storage_key = state.blobs.storage_key(ns, &key).map_err(blob_error)?;
    let head = store.head(&storage_key).await.map_err(blob_error)?;
    // RFC 9110 §13.2.2's order: If-Match, If-None-Match, then If-Range.
    let head = match if_match(&req)? {
        Some(cond) => cond.check(Ok(head)).map_err(blob_error)?,
        None => head,
    };
    if none_match_hits(&req, &head.etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, head.etag))
            .finish());
    }
    let range = match header_str(&req, "range") {
        Some(r) if if_range_holds(&req, &head) => {
            Some(ByteRange::parse(r).ok_or_else(|| blob_error(BlobError::RangeNotSatisfiable { size: head.size }))?)
        }
        _ => None,
    };
    let mut object = store.get(&storage_key, range).await.map_err(blob_error)?;
    // If-Range validated `head`; a version written since is not the one the client holds
    // part of, so it gets that version whole instead of a slice of it. (Each backend
    // reads a body and its metadata from one version.)
    if object.range.is_some() && req.headers().contains_key(header::IF_RANGE) && object.meta.etag != head.etag {
        object = store.get(&storage_key, None).await.map_err(blob_error)?;
    }
    let meta = &object.meta;
    let mut res = match object.range {
        Some(_) => HttpResponse::PartialContent(),
        None => HttpResponse::Ok(),
    };
    let length = match object.range {
        Some((first, last)) => {
            res.insert_header((header::CONTENT_RANGE, format!("bytes {first}-{last}/{}", meta.size)));
            last - first + 1
        }
        None => meta.size,
    };
    let essence = meta
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let disposition = if INLINE_TYPES.contains(&essence.as_str()) {
        "inline"
    } else {
        "attachment"
    };
    let file_name: String = url::form_urlencoded::byte_serialize(key.file_name().as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    res.insert_header((header::CONTENT_TYPE, blob_store::media::served_type(&meta.content_type)))
        .insert_header((header::ETAG, meta.etag.clone()))
        .insert_header((
            header::LAST_MODIFIED,
            meta.last_modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("{disposition}; filename*=UTF-8''{file_name}"),
        ))
        .no_chunking(length);
    Ok(res.streaming(object.body))
}

/// Deletes an object.
///
/// With `If-Match`, only while its current ETag is one of those given (412 otherwise).
#[utoipa::path(
    tag = "blobs",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("key" = String, Path, description = "Object key"),
        ("If-Match" = Option<String>, Header, description = "`*` or ETags: delete only if the current ETag is one of these (strong comparison: a weak `W/` tag never matches)"),
    ),
    security(("api_key" = ["blobs:write"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad key or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the namespace's write scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such namespace or object", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match and the object is missing or at another ETag (the current one is returned); nothing was deleted", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/{namespace}/{key:.*}")]
async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (ns_name, raw_key) = path.into_inner();
    // The scope for the name first, so a key without it cannot tell whether the
    // namespace exists.
    principal.require(&namespace::write_scope(&ns_name))?;
    let (ns, store) = namespace(&state, &ns_name)?;
    let key = path_key(&req, &raw_key)?;
    let cond = if_match(&req)?;
    let storage_key = state.blobs.storage_key(ns, &key).map_err(blob_error)?;
    if store.delete_if(&storage_key, cond.as_ref()).await.map_err(blob_error)? {
        record_blob_event(&state, "blob.deleted", &principal.actor(), ns, &key, None).await;
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(blob_error(BlobError::NotFound))
    }
}

/// Lists objects (and folders, with `delimiter=/`) in key order.
#[utoipa::path(
    tag = "blobs",
    params(("namespace" = String, Path, description = "Namespace"), ListQuery),
    security(("api_key" = ["blobs:read"])),
    responses(
        (status = 200, description = "One page", body = BlobList),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the namespace's read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such namespace", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/{namespace}")]
async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    // The scope for the name first, so a key without it cannot tell whether the
    // namespace exists.
    principal.require(&namespace::read_scope(&path))?;
    let (ns, store) = namespace(&state, &path)?;
    utf8_query(&req)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be 1 to 1000"));
    }
    let delimiter = match query.delimiter.as_deref() {
        None | Some("") => None,
        Some("/") => Some('/'),
        Some(_) => return Err(ApiError::bad_request("invalid_query", "the only delimiter is /")),
    };
    let prefix = query.prefix.clone().unwrap_or_default();
    if prefix.chars().any(char::is_control) || prefix.starts_with('/') {
        return Err(ApiError::bad_request(
            "invalid_query",
            "the prefix cannot start with / or hold control characters",
        ));
    }
    let after = match &query.cursor {
        Some(c) => Some(
            shared_db::paging::decode(c)
                .ok_or_else(|| ApiError::bad_request("invalid_query", "not a cursor from this API"))?,
        ),
        None => None,
    };
    let storage_prefix = ns.storage_prefix();
    let page = store
        .list(ListOptions {
            prefix: format!("{storage_prefix}{prefix}"),
            delimiter,
            after: after.map(|a| format!("{storage_prefix}{a}")),
            limit,
        })
        .await
        .map_err(blob_error)?;
    Ok(HttpResponse::Ok().json(BlobList {
        objects: page
            .objects
            .into_iter()
            .map(|o| BlobEntry {
                key: state.blobs.public_key(ns, &o.key).to_owned(),
                size: o.size,
                etag: o.etag,
                last_modified: o.last_modified,
            })
            .collect(),
        common_prefixes: page
            .common_prefixes
            .iter()
            .map(|p| state.blobs.public_key(ns, p).to_owned())
            .collect(),
        next_cursor: page
            .next_after
            .map(|a| shared_db::paging::encode(state.blobs.public_key(ns, &a))),
    }))
}

/// A URL for one direct `GET` or `PUT` without an API key, valid for `expires_in`
/// seconds (at most 7 days), signed by S3 (SigV4) or by the gateway (an HMAC under
/// `SECRET_KEY`).
///
/// A `PUT` declares its `content_length` and `content_type`: both must fit the
/// namespace, and the URL is bound to them (the upload must send exactly that
/// `Content-Length` and `Content-Type`). Each presign is an audit event
/// (`blob.presigned`).
#[utoipa::path(
    tag = "blobs",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body = PresignRequest,
    security(("api_key" = ["blobs:read"]), ("api_key" = ["blobs:write"])),
    responses(
        (status = 200, description = "The signed URL", body = Presigned),
        (status = 400, description = "Bad key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope the method needs", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such namespace", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large, or a `PUT`'s `content_length` is over the namespace's size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON, or a `PUT`'s `content_type` is not allowed in the namespace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad method, expiry or content type, or a `PUT` without `content_length`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/{namespace}/presign")]
async fn presign(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: Json<PresignRequest>,
) -> Result<HttpResponse, ApiError> {
    let method = body.method.to_ascii_uppercase();
    // The scope for the name first, so a key without it cannot tell whether the
    // namespace exists.
    match method.as_str() {
        "GET" => principal.require(&namespace::read_scope(&path))?,
        "PUT" => principal.require(&namespace::write_scope(&path))?,
        _ => return Err(ApiError::unprocessable("invalid_field", "method must be GET or PUT").for_field("method")),
    }
    let (ns, store) = namespace(&state, &path)?;
    let key = parse_key(&body.key)?;
    let expires_in = body.expires_in.unwrap_or(3600);
    if !(1..=blob_store::MAX_PRESIGN_SECS).contains(&expires_in) {
        return Err(
            ApiError::unprocessable("invalid_field", "expires_in must be 1 to 604800 seconds").for_field("expires_in"),
        );
    }
    let (content_type, content_length) = if method == "PUT" {
        let (content_type, content_length) = declared_upload(ns, &key, &body)?;
        (content_type, Some(content_length))
    } else {
        (String::new(), None)
    };
    let expires_at = Utc::now() + chrono::Duration::seconds(i64::try_from(expires_in).unwrap_or(3600));
    // S3 signs its own URLs (SigV4); the local backend's are signed by the gateway.
    let storage_key = state.blobs.storage_key(ns, &key).map_err(blob_error)?;
    let wanted_type = (!content_type.is_empty()).then_some(content_type.as_str());
    let by_store = store
        .presign(
            &storage_key,
            &method,
            std::time::Duration::from_secs(expires_in),
            wanted_type,
            content_length,
        )
        .await
        .map_err(blob_error)?;
    // No URL leaves without its audit event (an S3 upload through it never passes here).
    let event = serde_json::json!({
        "method": method,
        "expires_at": shared_db::time::rfc3339_micros::format(&expires_at),
        "content_type": wanted_type,
        "content_length": content_length,
        "signed_by": if by_store.is_some() { "storage" } else { "gateway" },
    });
    let mut conn = state.pool.get().await?;
    shared_db::events::record(
        &mut conn,
        "blob.presigned",
        &principal.actor(),
        &format!("blob:{}/{key}", ns.name),
        event,
    )
    .await?;
    drop(conn);
    if let Some(p) = by_store {
        let headers = p.headers.into_iter().collect();
        return Ok(HttpResponse::Ok().json(Presigned {
            url: p.url,
            method,
            headers,
            expires_at,
        }));
    }
    let signed = state.blobs.sign(
        &method,
        &ns.name,
        &key,
        expires_at.timestamp(),
        &content_type,
        content_length,
    );
    let path_key = key_path(&key);
    let mut url = url::Url::parse(&format!(
        "{}/api/v1/blobs/{}/{path_key}",
        state.public_url.trim_end_matches('/'),
        ns.name
    ))
    .map_err(ApiError::internal)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("X-EB-Method", &method)
            .append_pair("X-EB-Expires", &signed.expires.to_string());
        if !content_type.is_empty() {
            q.append_pair("X-EB-Content-Type", &content_type);
        }
        if let Some(len) = content_length {
            q.append_pair("X-EB-Content-Length", &len.to_string());
        }
        q.append_pair("X-EB-Signature", &signed.signature);
    }
    let mut headers = std::collections::BTreeMap::new();
    if !content_type.is_empty() {
        headers.insert("Content-Type".to_owned(), content_type);
    }
    if let Some(len) = content_length {
        headers.insert("Content-Length".to_owned(), len.to_string());
    }
    Ok(HttpResponse::Ok().json(Presigned {
        url: url.into(),
        method,
        headers,
        expires_at,
    }))
}

/// The content type (default: the type of the key's extension, else
/// `application/octet-stream`) and length a presigned `PUT` declares, checked against the
/// namespace as an upload through the gateway would be (the type it would be stored with).
fn declared_upload(ns: &Namespace, key: &ObjectKey, body: &PresignRequest) -> Result<(String, u64), ApiError> {
    let content_length = body.content_length.ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_field",
            "a PUT declares content_length: the upload's size in bytes",
        )
        .for_field("content_length")
    })?;
    if content_length > ns.max_size {
        return Err(blob_error(BlobError::TooLarge { limit: ns.max_size }).for_field("content_length"));
    }
    let content_type = body
        .content_type
        .clone()
        .unwrap_or_else(|| blob_store::media::guess(key));
    let well_formed = content_type.len() <= 255
        && content_type.contains('/')
        && content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !well_formed {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "content_type must be a media type such as image/png (printable ASCII, at most 255 bytes)",
        )
        .for_field("content_type"));
    }
    // The type sent is what S3 stores; the gateway stores the type it implies (a generic
    // one gives way to the key's): both must be accepted.
    type_allowed(ns, &content_type)
        .and_then(|()| content_type_for(ns, Some(&content_type), key))
        .map_err(|e| e.for_field("content_type"))?;
    Ok((content_type, content_length))
}

/// Registers the storage routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(presign)
        .service(list)
        .service(form::upload_form)
        .service(upload)
        .service(download)
        .service(remove);
}
