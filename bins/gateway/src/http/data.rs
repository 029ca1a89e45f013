//! `/api/v1/data`: JSON documents that client and web share, in collections. Reading needs
//! `data:read:<collection>`, writing `data:write:<collection>`. Every document has a
//! version, sent as `ETag`; `If-Match` makes writes conditional and `If-None-Match: *`
//! creates only. `PATCH` takes a JSON Merge Patch (RFC 7396). The rules are the
//! `documents` crate's; this module translates HTTP.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, put, web};
use chrono::{DateTime, Utc};
use documents::{Change, Conditions, DocFilter, Document, DocumentService};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Principal;
use crate::error::{ApiError, Problem, Reply};
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

/// Checks the collection's name, that the key holds `data:<access>:<collection>`, then
/// the id's (when there is one).
fn open(principal: &Principal, access: &str, collection: &str, id: Option<&str>) -> Result<(), ApiError> {
    documents::check_collection(collection)?;
    principal.require(&format!("data:{access}:{collection}"))?;
    id.map(documents::check_id).transpose()?;
    Ok(())
}

/// The document service, with the configured size limit.
fn service(state: &AppState) -> DocumentService {
    DocumentService::new(state.config.storage.max_document_bytes)
}

fn header_text(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A write's `If-Match` and `If-None-Match`.
fn conditions(req: &HttpRequest) -> Result<Conditions, documents::DocumentError> {
    Conditions::parse(
        header_text(req, header::IF_MATCH),
        header_text(req, header::IF_NONE_MATCH),
    )
}

fn is_json(req: &HttpRequest) -> Result<(), ApiError> {
    let essence = header_text(req, header::CONTENT_TYPE)
        .and_then(|ct| ct.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
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
) -> Reply {
    let (collection, id) = path.into_inner();
    open(&principal, "write", &collection, Some(&id))?;
    is_json(&req)?;
    let value = service(&state).parse(&body)?;
    let cond = conditions(&req)?;
    let mut conn = state.pool.get().await?;
    let (doc, created) = service(&state)
        .write(&mut conn, &collection, &id, change(value), cond, &principal.actor())
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(HttpResponse::build(status)
        .insert_header((header::ETAG, documents::etag(doc.version)))
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
) -> Reply {
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
) -> Reply {
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
) -> Reply {
    let (collection, id) = path.into_inner();
    open(&principal, "read", &collection, Some(&id))?;
    let mut conn = state.pool.get().await?;
    let doc = service(&state).get(&mut conn, &collection, &id).await?;
    let tag = documents::etag(doc.version);
    if documents::not_modified(header_text(&req, header::IF_NONE_MATCH), doc.version) {
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
) -> Reply {
    let (collection, id) = path.into_inner();
    open(&principal, "write", &collection, Some(&id))?;
    let cond = conditions(&req)?;
    let mut conn = state.pool.get().await?;
    service(&state)
        .delete(&mut conn, &collection, &id, cond.if_match, &principal.actor())
        .await?;
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
) -> Reply {
    let collection = path.into_inner();
    open(&principal, "read", &collection, None)?;
    let filter = DocFilter::from_query(query.into_inner());
    let mut conn = state.pool.get().await?;
    let page = service(&state).list(&mut conn, &collection, &filter).await?;
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
) -> Reply {
    let collection = path.into_inner();
    open(&principal, "write", &collection, None)?;
    is_json(&req)?;
    let schema = service(&state).parse(&body)?;
    documents::check_schema(&schema)?;
    let mut conn = state.pool.get().await?;
    service(&state)
        .set_schema(&mut conn, &collection, Some(&schema))
        .await?;
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
async fn get_schema(state: web::Data<AppState>, principal: Principal, path: web::Path<String>) -> Reply {
    let collection = path.into_inner();
    open(&principal, "read", &collection, None)?;
    let mut conn = state.pool.get().await?;
    let schema = service(&state)
        .schema(&mut conn, &collection)
        .await?
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
async fn delete_schema(state: web::Data<AppState>, principal: Principal, path: web::Path<String>) -> Reply {
    let collection = path.into_inner();
    open(&principal, "write", &collection, None)?;
    let mut conn = state.pool.get().await?;
    service(&state).set_schema(&mut conn, &collection, None).await?;
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
