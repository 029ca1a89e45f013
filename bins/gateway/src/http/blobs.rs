//! `/api/v1/blobs`: the shared storage of clients, the web and AI services. Bodies stream
//! through in both directions; keys follow `blob_store::ObjectKey`'s rules; reads need
//! `blobs:read:<namespace>`, writes `blobs:write:<namespace>`, or a URL the gateway signed.
//! Every rule is `blob_store`'s: this module reads the request, calls one
//! `BlobService` method and writes the answer.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, route, web};
use blob_store::{
    Access, BlobError, BlobInfo, ByteRange, Conditions, Grant, IfMatch, KeyError, ListRequest, Listing, ObjectKey,
    PresignRequest, PresignedLink, SignedQuery, Upload, media,
};
use utoipa_actix_web::service_config::ServiceConfig;
use web_kit::conditional::{self, EntityTags, header_str};
use web_kit::responses::Unauthorized;
use web_kit::{body, utf8};

use super::json::Json;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

mod form;
pub mod uploads;

/// 404: the namespace does not exist.
#[derive(Debug, utoipa::IntoResponses)]
#[response(
    status = 404,
    description = "No such namespace",
    content_type = "application/problem+json"
)]
pub struct NoNamespace(pub Problem);

/// 404: the namespace or the object does not exist.
#[derive(Debug, utoipa::IntoResponses)]
#[response(
    status = 404,
    description = "No such namespace or object",
    content_type = "application/problem+json"
)]
pub struct NoObject(pub Problem);

/// A key rule broken, as a 400 naming it.
fn key_problem(e: KeyError) -> ApiError {
    BlobError::InvalidKey(e).into()
}

/// The key of a `/{namespace}/{key}` route; a path whose bytes are not UTF-8 once
/// percent-decoded is refused (Actix would decode it lossily).
fn path_key(req: &HttpRequest, decoded: &str) -> Result<ObjectKey, ApiError> {
    if !utf8::path_is_utf8(req) {
        return Err(key_problem(KeyError::NotUtf8));
    }
    ObjectKey::parse(decoded).map_err(key_problem)
}

/// Authorises with an API key holding the scope `access` needs, or with a URL signed for
/// its method. This runs before the namespace is looked up, so a caller without a key or
/// a good signature gets the same answer whether or not namespace `ns_name` exists.
async fn authorise(
    req: &HttpRequest,
    state: &AppState,
    ns_name: &str,
    key: &ObjectKey,
    access: Access,
) -> Result<Grant, ApiError> {
    utf8::utf8_query(req)?;
    let query = web::Query::<SignedQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    if let Some(signed) = query.into_inner().signed() {
        return Ok(state.blobs.signed_grant(ns_name, key, access.method(), signed)?);
    }
    let principal = <Principal as actix_web::FromRequest>::extract(req).await?;
    principal.require(&access.scope(ns_name))?;
    Ok(Grant::actor(principal.actor()))
}

/// The request's `If-Match`, or a 400 when malformed.
fn if_match(req: &HttpRequest) -> Result<Option<IfMatch>, ApiError> {
    Ok(conditional::if_match(req)?.map(|tags| match tags {
        EntityTags::Any => IfMatch::Any,
        EntityTags::Tags(tags) => IfMatch::Tags(tags),
    }))
}

/// The checks an upload's headers ask for: `Content-MD5`, `x-checksum-sha256`,
/// `If-None-Match: *` and `If-Match`; a 400 when one is malformed.
fn conditions(req: &HttpRequest) -> Result<Conditions, ApiError> {
    Ok(Conditions {
        expected_md5: conditional::content_md5(req)?,
        expected_sha256: conditional::sha256(req, "x-checksum-sha256")?,
        if_none_match: conditional::if_none_match_any(req)?,
        if_match: if_match(req)?,
    })
}

/// The 201 answer for a stored object (its audit event is recorded).
fn created(written: &Upload<'_>, stored: BlobInfo) -> HttpResponse {
    let location = format!(
        "/api/v1/blobs/{}/{}",
        written.namespace().name,
        written.key().url_path()
    );
    HttpResponse::Created()
        .insert_header((header::ETAG, stored.etag.clone()))
        .insert_header((header::LOCATION, location))
        .json(stored)
}

/// The response header naming the whole object's hex SHA-256 (the upload's request header too).
const CHECKSUM_SHA256: &str = "x-checksum-sha256";

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
        (status = 201, description = "Stored", body = BlobInfo),
        (status = 400, description = "Bad key, checksum mismatch or interrupted upload", body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "The key lacks the namespace's write scope, or a bad signature (or another `Content-Type` or `Content-Length` than the URL was signed for)", body = Problem, content_type = "application/problem+json"),
        NoNamespace,
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
    let grant = authorise(&req, &state, &ns_name, &key, Access::Write).await?;
    let sent_type = header_str(&req, "content-type");
    let sent_length = header_str(&req, "content-length").and_then(|v| v.parse::<u64>().ok());
    let upload = state
        .blobs
        .upload(&ns_name, key, grant, sent_type, sent_length, || conditions(&req))?;
    let stored = body::pump(payload, |body| upload.put(body)).await?;
    Ok(created(&upload, stored))
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
        (status = 200, description = "The object", content_type = "application/octet-stream",
            headers(("x-checksum-sha256" = String, description = "Hex SHA-256 of the whole object"))),
        (status = 206, description = "Part of it", content_type = "application/octet-stream",
            headers(("x-checksum-sha256" = String, description = "Hex SHA-256 of the whole object"))),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Bad key or If-Match", body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "The key lacks the namespace's read scope, or a bad signature", body = Problem, content_type = "application/problem+json"),
        NoObject,
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
    authorise(&req, &state, &ns_name, &key, Access::Read).await?;
    let stored = state.blobs.object(&ns_name, &key)?;
    let head = stored.head().await?;
    // RFC 9110 §13.2.2's order: If-Match, If-None-Match, then If-Range.
    let head = match if_match(&req)? {
        Some(cond) => cond.check(Ok(head))?,
        None => head,
    };
    if conditional::none_match_hits(&req, &head.etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, head.etag))
            .finish());
    }
    let range = match header_str(&req, "range") {
        Some(r) if conditional::if_range_holds(&req, &head.etag) => {
            Some(ByteRange::parse(r).ok_or(BlobError::RangeNotSatisfiable { size: head.size })?)
        }
        _ => None,
    };
    let validated = req
        .headers()
        .contains_key(header::IF_RANGE)
        .then_some(head.etag.as_str());
    let object = stored.get_range_of(range, validated).await?;
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
    res.insert_header((header::CONTENT_TYPE, media::served_type(&meta.content_type)))
        .insert_header((header::ETAG, meta.etag.clone()))
        .insert_header((
            header::LAST_MODIFIED,
            meta.last_modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            media::disposition(&meta.content_type, &key),
        ))
        .no_chunking(length);
    // The whole object's SHA-256 (also on a part), so a client can check what it
    // assembled; unknown only for an S3 multipart upload that declared none.
    if !meta.sha256.is_empty() {
        res.insert_header((CHECKSUM_SHA256, meta.sha256.clone()));
    }
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
        Unauthorized,
        (status = 403, description = "The key lacks the namespace's write scope", body = Problem, content_type = "application/problem+json"),
        NoObject,
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
    state.blobs.authorise(&ns_name, Access::Write, |scope| {
        principal.require(scope).map_err(ApiError::from)
    })?;
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
    params(("namespace" = String, Path, description = "Namespace"), ListRequest),
    security(("api_key" = ["blobs:read"])),
    responses(
        (status = 200, description = "One page", body = Listing),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "The key lacks the namespace's read scope", body = Problem, content_type = "application/problem+json"),
        NoNamespace,
    )
)]
#[get("/{namespace}")]
async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<ListRequest>,
) -> Result<HttpResponse, ApiError> {
    state.blobs.authorise(&path, Access::Read, |scope| {
        principal.require(scope).map_err(ApiError::from)
    })?;
    utf8::utf8_query(&req)?;
    Ok(HttpResponse::Ok().json(state.blobs.list(&path, &query).await?))
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
        (status = 200, description = "The signed URL", body = PresignedLink),
        (status = 400, description = "Bad key", body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "The key lacks the scope the method needs", body = Problem, content_type = "application/problem+json"),
        NoNamespace,
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
    // The scope for the name first, so a key without it cannot tell whether the
    // namespace exists.
    principal.require(&Access::for_method(&body.method)?.scope(&path))?;
    let link = state
        .blobs
        .presign(&principal.actor(), &path, body.into_inner(), &state.public_url)
        .await?;
    Ok(HttpResponse::Ok().json(link))
}

/// Registers the storage routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(presign).configure(uploads::configure);
    cfg.service(list)
        .service(form::upload_form)
        .service(upload)
        .service(download)
        .service(remove);
}
