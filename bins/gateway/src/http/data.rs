//! `/api/v1/data`: JSON documents that client and web share, in collections. Reading needs
//! `data:read:<collection>`, writing `data:write:<collection>`. Every document has a
//! version, sent as `ETag`; `If-Match` makes writes conditional and `If-None-Match: *`
//! creates only. `PATCH` takes a JSON Merge Patch (RFC 7396). The rules are the
//! `documents` crate's; this module translates HTTP.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, put, web};
use chrono::{DateTime, Utc};
use documents::{Change, Conditions, DocFilter, Document, DocumentError, DocumentService};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::http::AuthProblems;
use crate::state::AppState;

/// A document.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataDocument {
    /// Its id.
    pub id: String,
    /// Its version (the `ETag`).
    pub version: i64,
    /// Created.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last written.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub updated_at: DateTime<Utc>,
    /// The document.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl From<Document> for DataDocument {
    fn from(d: Document) -> Self {
        DataDocument {
            data: serde_json::from_str(&d.body).unwrap_or(Value::Null),
            id: d.id,
            version: d.version,
            created_at: d.created_at.and_utc(),
            updated_at: d.updated_at.and_utc(),
        }
    }
}

/// One page of documents.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataPage {
    /// Documents in id order.
    pub items: Vec<DataDocument>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn check_collection(name: &str) -> Result<(), ApiError> {
    documents::check_collection(name).map_err(doc_error)
}

fn check_id(id: &str) -> Result<(), ApiError> {
    documents::check_id(id).map_err(doc_error)
}

/// The document service, with the configured size limit.
fn service(state: &AppState) -> DocumentService {
    DocumentService::new(state.config.storage.max_document_bytes)
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Reads `If-Match` (one version) and `If-None-Match: *`.
fn conditions(req: &HttpRequest) -> Result<Conditions, ApiError> {
    let if_match = match req.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => Some(
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse::<i64>()
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_precondition",
                        "If-Match takes one ETag of this API, such as \"3\"",
                    )
                })?,
        ),
    };
    let if_none_match = match req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        None => false,
        Some("*") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_precondition",
                "only If-None-Match: * is supported on writes",
            ));
        }
    };
    Ok(Conditions {
        if_match,
        if_none_match,
    })
}

/// 412 `precondition_failed`, with the current version's `ETag` when there is one (shared
/// with the storage routes).
pub(crate) fn precondition_failed(detail: String, current: Option<&str>) -> ApiError {
    let err = ApiError::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", detail);
    match current.and_then(|v| HeaderValue::from_str(v).ok()) {
        Some(v) => err.with_header(header::ETAG, v),
        None => err,
    }
}

fn doc_error(e: DocumentError) -> ApiError {
    match e {
        DocumentError::InvalidCollection => ApiError::bad_request("invalid_collection", e.to_string()),
        DocumentError::InvalidId => ApiError::bad_request("invalid_id", e.to_string()),
        DocumentError::NotFound => ApiError::not_found("document_not_found", "no document has that id"),
        DocumentError::PreconditionFailed { current } => {
            let detail = match current {
                Some(v) => format!("the document is at version {v}"),
                None => "the document does not exist".to_owned(),
            };
            precondition_failed(detail, current.map(etag).as_deref())
        }
        DocumentError::TooLarge { size, limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the document would be {size} bytes; documents are at most {limit} bytes"),
        ),
        DocumentError::SchemaViolation(paths) => ApiError::unprocessable("schema_violation", paths.join("; ")),
        DocumentError::InvalidSchema(m) => ApiError::unprocessable("invalid_schema", m),
        DocumentError::Contended => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::error::BUSY,
            "the document kept changing while it was validated; nothing was stored: retry",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
        DocumentError::Paging(p) => p.into(),
        DocumentError::Db(db) => db.into(),
    }
}

fn parse_body(state: &AppState, body: &web::Bytes) -> Result<Value, ApiError> {
    if body.len() > state.config.storage.max_document_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "documents are at most {} bytes",
                state.config.storage.max_document_bytes
            ),
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))
}

fn is_json(req: &HttpRequest) -> Result<(), ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ))
    }
}

/// The write both `PUT` (replace) and `PATCH` (merge) perform: 201 when it created the
/// document, 200 otherwise, with the new `ETag`.
async fn write_document(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    change: fn(Value) -> Change,
) -> Result<HttpResponse, ApiError> {
    let (collection, id) = path.into_inner();
    check_collection(&collection)?;
    principal.require(&format!("data:write:{collection}"))?;
    check_id(&id)?;
    is_json(&req)?;
    let value = parse_body(&state, &body)?;
    let cond = conditions(&req)?;
    let mut conn = state.pool.get().await?;
    let (doc, created) = service(&state)
        .write(&mut conn, &collection, &id, change(value), cond, &principal.actor())
        .await
        .map_err(doc_error)?;
    let mut res = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(res
        .insert_header((header::ETAG, etag(doc.version)))
        .json(DataDocument::from(doc)))
}

/// Creates or replaces a document.
#[utoipa::path(
    tag = "data",
    params(
        ("collection" = String, Path, description = "Collection"),
        ("id" = String, Path, description = "Document id"),
        ("If-Match" = Option<String>, Header, description = "Replace only this version"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only"),
    ),
    request_body(content = Object, content_type = "application/json"),
    security(("api_key" = ["data:write"])),
    responses(
        (status = 200, description = "Replaced", body = DataDocument),
        (status = 201, description = "Created", body = DataDocument),
        (status = 400, description = "Bad JSON, id or precondition", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Another version is current (its ETag is returned)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over the document size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Breaks the collection's schema (the failing paths)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[put("/{collection}/{id}")]
async fn replace(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    write_document(state, principal, req, path, body, Change::Replace).await
}

/// Applies a JSON Merge Patch (RFC 7396) to a document, atomically.
#[utoipa::path(
    tag = "data",
    params(
        ("collection" = String, Path, description = "Collection"),
        ("id" = String, Path, description = "Document id"),
        ("If-Match" = Option<String>, Header, description = "Patch only this version"),
    ),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    security(("api_key" = ["data:write"])),
    responses(
        (status = 200, description = "Patched", body = DataDocument),
        (status = 400, description = "Bad JSON or precondition", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Another version is current", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over the document size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The result breaks the collection's schema", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[patch("/{collection}/{id}")]
async fn merge(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    write_document(state, principal, req, path, body, Change::MergePatch).await
}

/// One document; `If-None-Match` with its ETag answers 304.
#[utoipa::path(
    tag = "data",
    params(("collection" = String, Path, description = "Collection"), ("id" = String, Path, description = "Document id")),
    security(("api_key" = ["data:read"])),
    responses(
        (status = 200, description = "The document", body = DataDocument),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{collection}/{id}")]
async fn read(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id) = path.into_inner();
    check_collection(&collection)?;
    principal.require(&format!("data:read:{collection}"))?;
    check_id(&id)?;
    let mut conn = state.pool.get().await?;
    let doc = service(&state)
        .get(&mut conn, &collection, &id)
        .await
        .map_err(doc_error)?;
    let tag = etag(doc.version);
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, tag)).finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, tag))
        .json(DataDocument::from(doc)))
}

/// Deletes a document (`If-Match` makes it conditional).
#[utoipa::path(
    tag = "data",
    params(
        ("collection" = String, Path, description = "Collection"),
        ("id" = String, Path, description = "Document id"),
        ("If-Match" = Option<String>, Header, description = "Delete only this version"),
    ),
    security(("api_key" = ["data:write"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad id or precondition", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Another version is current", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[delete("/{collection}/{id}")]
async fn remove(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (collection, id) = path.into_inner();
    check_collection(&collection)?;
    principal.require(&format!("data:write:{collection}"))?;
    check_id(&id)?;
    let cond = conditions(&req)?;
    let mut conn = state.pool.get().await?;
    service(&state)
        .delete(&mut conn, &collection, &id, cond.if_match, &principal.actor())
        .await
        .map_err(doc_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lists a collection: `prefix` on ids, `cursor`, `limit` (1 to 500, default 100), and any
/// other query parameter as an equality filter on a top-level field (`?status=open`).
#[utoipa::path(
    tag = "data",
    params(("collection" = String, Path, description = "Collection")),
    security(("api_key" = ["data:read"])),
    responses(
        (status = 200, description = "One page", body = DataPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{collection}")]
async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let collection = path.into_inner();
    check_collection(&collection)?;
    principal.require(&format!("data:read:{collection}"))?;
    let mut filter = DocFilter::default();
    for (k, v) in query.into_inner() {
        match k.as_str() {
            "prefix" => filter.prefix = v,
            "cursor" => filter.cursor = Some(v),
            // Not a number: refused like any other limit out of range.
            "limit" => filter.limit = Some(v.parse().unwrap_or(0)),
            _ => filter.equals.push((k, v)),
        }
    }
    let mut conn = state.pool.get().await?;
    let page = service(&state)
        .list(&mut conn, &collection, &filter)
        .await
        .map_err(doc_error)?;
    Ok(HttpResponse::Ok().json(DataPage {
        items: page.items.into_iter().map(DataDocument::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Sets the collection's JSON Schema: later writes that break it answer 422.
///
/// Patterns run on a linear-time engine: look-around and backreferences are refused.
#[utoipa::path(
    tag = "data",
    params(("collection" = String, Path, description = "Collection")),
    request_body(content = Object, content_type = "application/json"),
    security(("api_key" = ["data:write"])),
    responses(
        (status = 200, description = "Set"),
        (status = 400, description = "Bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid JSON Schema, or a pattern the linear-time engine cannot run (look-around, backreferences) or that compiles too large (the pattern is named)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[put("/{collection}/_schema")]
async fn put_schema(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let collection = path.into_inner();
    check_collection(&collection)?;
    principal.require(&format!("data:write:{collection}"))?;
    is_json(&req)?;
    let schema = parse_body(&state, &body)?;
    if !schema.is_object() {
        // `true` / `false` are schemas too, but `false` would refuse every write.
        return Err(ApiError::unprocessable(
            "invalid_schema",
            "the schema must be a JSON object",
        ));
    }
    let mut conn = state.pool.get().await?;
    service(&state)
        .set_schema(&mut conn, &collection, Some(&schema))
        .await
        .map_err(doc_error)?;
    Ok(HttpResponse::Ok().json(schema))
}

/// The collection's JSON Schema.
#[utoipa::path(
    tag = "data",
    params(("collection" = String, Path, description = "Collection")),
    security(("api_key" = ["data:read"])),
    responses(
        (status = 200, description = "The schema"),
        (status = 404, description = "The collection has none", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{collection}/_schema")]
async fn get_schema(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let collection = path.into_inner();
    check_collection(&collection)?;
    principal.require(&format!("data:read:{collection}"))?;
    let mut conn = state.pool.get().await?;
    let schema = service(&state)
        .schema(&mut conn, &collection)
        .await
        .map_err(doc_error)?
        .ok_or_else(|| ApiError::not_found("schema_not_found", "the collection has no schema"))?;
    Ok(HttpResponse::Ok().json(schema))
}

/// Removes the collection's JSON Schema.
#[utoipa::path(
    tag = "data",
    params(("collection" = String, Path, description = "Collection")),
    security(("api_key" = ["data:write"])),
    responses((status = 204, description = "Removed"), AuthProblems)
)]
#[delete("/{collection}/_schema")]
async fn delete_schema(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let collection = path.into_inner();
    check_collection(&collection)?;
    principal.require(&format!("data:write:{collection}"))?;
    let mut conn = state.pool.get().await?;
    service(&state)
        .set_schema(&mut conn, &collection, None)
        .await
        .map_err(doc_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers the data routes (`_schema` before `{id}`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(put_schema)
        .service(get_schema)
        .service(delete_schema)
        .service(list)
        .service(replace)
        .service(merge)
        .service(read)
        .service(remove);
}
