//! `/api/v1/blobs/{namespace}/uploads`: multipart, resumable uploads. A client starts one
//! (`POST`), `PUT`s each part to the URL it was given (S3 itself, or the gateway's signed
//! part URL for the local store, served here without an API key), may `GET` the upload to
//! see which parts arrived and get fresh URLs, then completes it (`POST .../complete`) or
//! aborts it (`DELETE`). Every rule is `blob_store`'s (`service/uploads.rs`); this module
//! reads the request, calls one `BlobService` method and writes the answer.
//!
//! Upload ids have one shape (`up_` and 32 hex digits), and only paths whose id has it
//! reach these routes (the route table knows the shape too): an object whose key starts
//! with `uploads/` is still read and written through the object routes, except keys
//! `uploads/up_<32 hex digits>` and below, which these routes answer and which are
//! therefore refused on every write (400 `invalid_key`, rule `reserved_upload_path`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use blob_store::{Access, BlobError, BlobInfo, CompleteUpload, CreateUpload, ObjectKey, SignedQuery, UploadInfo};
use web_kit::conditional::header_str;
use web_kit::responses::Unauthorized;
use web_kit::{body, utf8};

use super::super::json::Json;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// The shape of an upload id in a route (the route table's too: see `routes.rs`). The
/// routes' attributes spell the 32 digits out (`[0-9a-f]` 32 times): the OpenAPI paths
/// are read from them, and a `{32}` there would be taken for a path parameter.
pub const UPLOAD_ID_ROUTE: &str = "up_[0-9a-f]{32}";

/// 404: the namespace or the upload does not exist (or was completed, aborted, or expired).
#[derive(Debug, utoipa::IntoResponses)]
#[response(
    status = 404,
    description = "No such namespace or upload (completed, aborted, expired, or another namespace's)",
    content_type = "application/problem+json"
)]
pub struct NoUpload(pub Problem);

/// The caller's write scope on the namespace, checked before the namespace is looked up.
fn may_write(state: &AppState, principal: &Principal, ns_name: &str) -> Result<(), ApiError> {
    state.blobs.authorise(ns_name, Access::Write, |scope| {
        principal.require(scope).map_err(ApiError::from)
    })?;
    Ok(())
}

/// Starts a multipart upload of one object: answers a URL for every part.
///
/// The object is checked as a `PUT` of it would be: its `size` against the namespace's
/// limit (413), its type (the declared one, or the key's extension's) against the
/// namespace's allowed types (415), its key against the key rules. Parts follow S3's
/// rules: `part_size` is 5 MiB to 5 GiB and an upload has at most 10,000 parts (default
/// 8 MiB, grown to fit). `PUT` each part's bytes (exactly its `size`, as
/// `Content-Length`) to its `url` with its `headers`, and keep the `ETag` each answers
/// (the quoted hex MD5 of the part: check it). The part URLs work until `expires_at` (a
/// day); an upload not completed by then is aborted.
///
/// `sha256`, when given, is the whole object's: the local store verifies it when the
/// parts are assembled (422, nothing stored), S3 stores it as the object's checksum
/// without reading the object (each part's MD5 is what protects the transfer there).
#[utoipa::path(
    tag = "blobs",
    operation_id = "uploads_create",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body = CreateUpload,
    security(("api_key" = ["blobs:write"])),
    responses(
        (status = 201, description = "Started; `Location` is the upload", body = UploadInfo,
            headers(("Location" = String, description = "The upload's URL"))),
        (status = 400, description = "Bad key", body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "The key lacks the namespace's write scope", body = Problem, content_type = "application/problem+json"),
        super::NoNamespace,
        (status = 409, description = "`too_many_uploads`: the namespace holds its limit of open uploads (1,000); complete or abort some", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`size` is over the namespace's size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The type is not allowed in the namespace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `size`, `part_size`, `content_type` or `sha256`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/{namespace}/uploads")]
async fn create_upload(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: Json<CreateUpload>,
) -> Result<HttpResponse, ApiError> {
    may_write(&state, &principal, &path)?;
    let upload = state
        .blobs
        .create_upload(&principal.actor(), &path, body.into_inner(), &state.public_url)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/blobs/{}/uploads/{}", upload.namespace, upload.id),
        ))
        .json(upload))
}

/// An upload in progress: the parts received so far (`received`, with their ETags and
/// sizes) and fresh URLs for every part, to resume after a dropped connection.
#[utoipa::path(
    tag = "blobs",
    operation_id = "uploads_show",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("upload_id" = String, Path, description = "The upload's id"),
    ),
    security(("api_key" = ["blobs:write"])),
    responses(
        (status = 200, description = "The upload", body = UploadInfo),
        Unauthorized,
        (status = 403, description = "The key lacks the namespace's write scope", body = Problem, content_type = "application/problem+json"),
        NoUpload,
    )
)]
#[get(
    "/{namespace}/uploads/{upload_id:up_[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]}"
)]
async fn show_upload(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (ns_name, id) = path.into_inner();
    may_write(&state, &principal, &ns_name)?;
    let upload = state.blobs.show_upload(&ns_name, &id, &state.public_url).await?;
    Ok(HttpResponse::Ok().json(upload))
}

/// Stores one part of an upload to the local store, through the URL the upload listed
/// for it (signed by the gateway: no API key). The body must be exactly the part's size
/// (`Content-Length`); it streams to a part file. Answers the part's `ETag`, the quoted
/// hex MD5 of its bytes; sending a part again replaces it. (Uploads to S3 send their parts
/// to S3's own URLs instead.)
#[utoipa::path(
    tag = "blobs",
    operation_id = "uploads_put_part",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("upload_id" = String, Path, description = "The upload's id"),
        ("number" = u32, Path, description = "The part's number (1 to 10,000)"),
        ("X-EB-Method" = String, Query, description = "`PUT`, as signed"),
        ("X-EB-Expires" = i64, Query, description = "Unix time the URL expires at, as signed"),
        ("X-EB-Content-Length" = u64, Query, description = "The part's size, as signed"),
        ("X-EB-Signature" = String, Query, description = "The gateway's signature"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored", headers(("ETag" = String, description = "Quoted hex MD5 of the part's bytes"))),
        (status = 400, description = "Interrupted upload", body = Problem, content_type = "application/problem+json"),
        // Without its signature the path is an object's (`uploads/...`), which needs a key.
        Unauthorized,
        (status = 403, description = "No signature, a bad or expired one, or another `Content-Length` than the part's", body = Problem, content_type = "application/problem+json"),
        NoUpload,
        (status = 409, description = "`upload_completing`: another request is completing or aborting the upload", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put(
    "/{namespace}/uploads/{upload_id:up_[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]}/parts/{number:[0-9]+}"
)]
async fn put_part(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (ns_name, id, number) = path.into_inner();
    utf8::utf8_query(&req)?;
    let query = web::Query::<SignedQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let signed = query.into_inner().signed().ok_or_else(|| {
        ApiError::from(BlobError::SignatureInvalid(
            "a part is sent to the signed URL its upload lists".to_owned(),
        ))
    })?;
    // A number too long for u32 cannot have been signed.
    let number: u32 = number
        .parse()
        .map_err(|_| ApiError::from(BlobError::SignatureInvalid("bad signature".to_owned())))?;
    let sent_length = header_str(&req, "content-length").and_then(|v| v.parse::<u64>().ok());
    let part = state
        .blobs
        .part_upload(&ns_name, &id, number, signed, sent_length)
        .await?;
    let stored = body::pump(payload, |body| part.put(body)).await?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, stored.etag)).finish())
}

/// Completes an upload: the parts (every one, ascending, each with the `ETag` its `PUT`
/// answered) are assembled into the object, which is then like one stored by a `PUT`
/// (same answer and `Location`; `blob.written` is recorded).
///
/// Refusals store nothing and keep the upload, so it can be fixed and completed again:
/// a part not received or with another ETag, or parts out of order (`invalid_parts`);
/// parts not adding up to the declared size (`size_mismatch`); the declared `sha256` not
/// matching (local store, `checksum_mismatch`); the size over the namespace's limit now
/// (413). One request completes an upload: while it does, another completion, an abort
/// or a part gets 409 `upload_completing` (and 404 once it is done).
#[utoipa::path(
    tag = "blobs",
    operation_id = "uploads_complete",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("upload_id" = String, Path, description = "The upload's id"),
    ),
    request_body = CompleteUpload,
    security(("api_key" = ["blobs:write"])),
    responses(
        (status = 201, description = "Stored", body = BlobInfo,
            headers(("Location" = String, description = "The object's URL"), ("ETag" = String, description = "The object's entity tag"))),
        Unauthorized,
        (status = 403, description = "The key lacks the namespace's write scope", body = Problem, content_type = "application/problem+json"),
        NoUpload,
        (status = 409, description = "`upload_completing`: another request is completing or aborting the upload", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The object is over the namespace's size limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_parts`, `size_mismatch` or `checksum_mismatch`; nothing was stored", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post(
    "/{namespace}/uploads/{upload_id:up_[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]}/complete"
)]
async fn complete_upload(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    body: Json<CompleteUpload>,
) -> Result<HttpResponse, ApiError> {
    let (ns_name, id) = path.into_inner();
    may_write(&state, &principal, &ns_name)?;
    let stored = state
        .blobs
        .complete_upload(&principal.actor(), &ns_name, &id, body.into_inner())
        .await?;
    let key = ObjectKey::parse(&stored.key).map_err(super::key_problem)?;
    Ok(HttpResponse::Created()
        .insert_header((header::ETAG, stored.etag.clone()))
        .insert_header((
            header::LOCATION,
            format!("/api/v1/blobs/{}/{}", stored.namespace, key.url_path()),
        ))
        .json(stored))
}

/// Aborts an upload: its parts are dropped.
#[utoipa::path(
    tag = "blobs",
    operation_id = "uploads_abort",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("upload_id" = String, Path, description = "The upload's id"),
    ),
    security(("api_key" = ["blobs:write"])),
    responses(
        (status = 204, description = "Aborted"),
        Unauthorized,
        (status = 403, description = "The key lacks the namespace's write scope", body = Problem, content_type = "application/problem+json"),
        NoUpload,
        (status = 409, description = "`upload_completing`: another request is completing or aborting the upload", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete(
    "/{namespace}/uploads/{upload_id:up_[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]}"
)]
async fn abort_upload(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (ns_name, id) = path.into_inner();
    may_write(&state, &principal, &ns_name)?;
    state.blobs.abort_upload(&ns_name, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers the upload routes (before the object routes, whose keys they would match).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_upload)
        .service(show_upload)
        .service(put_part)
        .service(complete_upload)
        .service(abort_upload);
}
