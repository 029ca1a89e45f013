//! `/api/v1/blobs`: the shared storage of clients, the web and AI services. Bodies stream
//! through in both directions; keys follow `blob_store::ObjectKey`'s rules; reads need
//! `blobs:read:<namespace>`, writes `blobs:write:<namespace>`, or a URL the gateway signed.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, route, web};
use blob_store::namespace;
use blob_store::{BlobError, ByteRange, Grant, KeyError, ListRequest, ObjectKey, SignedRequest};
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::Json;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

mod dto;
mod form;
mod headers;
mod stream;

use self::dto::SignatureQuery;
pub use self::dto::{Blob, BlobEntry, BlobList, ListQuery, PresignRequest, Presigned};
use self::headers::{conditions, header_str, if_match, if_range_holds, none_match_hits};
use self::stream::pump_into_store;

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

/// A key rule broken, as a 400 naming it.
fn key_problem(e: KeyError) -> ApiError {
    BlobError::InvalidKey(e).into()
}

fn parse_key(raw: &str) -> Result<ObjectKey, ApiError> {
    ObjectKey::parse(raw).map_err(key_problem)
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

/// The `Location` of an object.
fn location(ns: &str, key: &ObjectKey) -> String {
    format!("/api/v1/blobs/{ns}/{}", key.url_path())
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
        return Ok(state.blobs.signed_grant(ns_name, key, method, signed)?);
    }
    let principal = <Principal as actix_web::FromRequest>::extract(req).await?;
    principal.require(scope)?;
    Ok(Grant::actor(principal.actor()))
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
    let sent_type = header_str(&req, "content-type");
    let sent_length = header_str(&req, "content-length").and_then(|v| v.parse::<u64>().ok());
    let upload = state
        .blobs
        .upload(&ns_name, key, grant, sent_type, sent_length, || conditions(&req))?;
    let stored = pump_into_store(payload, |body| upload.put(body)).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::ETAG, stored.etag.clone()))
        .insert_header((header::LOCATION, location(&ns_name, upload.key())))
        .json(Blob::from(stored)))
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
    let stored = state.blobs.object(&ns_name, &key)?;
    let head = stored.head().await?;
    // RFC 9110 §13.2.2's order: If-Match, If-None-Match, then If-Range.
    let head = match if_match(&req)? {
        Some(cond) => cond.check(Ok(head))?,
        None => head,
    };
    if none_match_hits(&req, &head.etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, head.etag))
            .finish());
    }
    let range = match header_str(&req, "range") {
        Some(r) if if_range_holds(&req, &head) => {
            Some(ByteRange::parse(r).ok_or(BlobError::RangeNotSatisfiable { size: head.size })?)
        }
        _ => None,
    };
    let mut object = stored.get(range).await?;
    // If-Range validated `head`; a version written since is not the one the client holds
    // part of, so it gets that version whole instead of a slice of it. (Each backend
    // reads a body and its metadata from one version.)
    if object.range.is_some() && req.headers().contains_key(header::IF_RANGE) && object.meta.etag != head.etag {
        object = stored.get(None).await?;
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
    state.blobs.namespace(&ns_name)?;
    let key = path_key(&req, &raw_key)?;
    let cond = if_match(&req)?;
    state
        .blobs
        .delete(&principal.actor(), &ns_name, &key, cond.as_ref())
        .await?;
    Ok(HttpResponse::NoContent().finish())
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
    state.blobs.namespace(&path)?;
    utf8_query(&req)?;
    let query = query.into_inner();
    let page = state
        .blobs
        .list(
            &path,
            &ListRequest {
                prefix: query.prefix,
                delimiter: query.delimiter,
                cursor: query.cursor,
                limit: query.limit,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(BlobList {
        objects: page
            .objects
            .into_iter()
            .map(|o| BlobEntry {
                key: o.key,
                size: o.size,
                etag: o.etag,
                last_modified: o.last_modified,
            })
            .collect(),
        common_prefixes: page.common_prefixes,
        next_cursor: page.next_cursor,
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
    let body = body.into_inner();
    let request = blob_store::PresignRequest {
        key: body.key,
        method,
        expires_in: body.expires_in,
        content_type: body.content_type,
        content_length: body.content_length,
    };
    let link = state
        .blobs
        .presign(&principal.actor(), &path, request, &state.public_url)
        .await?;
    Ok(HttpResponse::Ok().json(Presigned {
        url: link.url,
        method: link.method,
        headers: link.headers,
        expires_at: link.expires_at,
    }))
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
