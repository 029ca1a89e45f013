//! `/api/v1/api-keys`: create (the key is shown once), list, show and revoke API keys,
//! over the `access` crate. Every route needs the `api-keys:admin` scope.

use access::{ApiKeyRow, KeyFilter};
use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::Json;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

const SCOPE: &str = "api-keys:admin";

/// A request to create a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for (1 to 200 characters).
    #[schema(example = "web platform")]
    pub name: String,
    /// Scopes the key holds: `*` for all, or names such as `emails:send`, `data:read:orders`.
    #[schema(example = json!(["emails:send", "slack:post"]))]
    pub scopes: Vec<String>,
    /// When the key stops working (RFC 3339); never when absent.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

pub use access::ApiKeyStatus;

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    /// Key id.
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// The key's first characters, to tell keys apart.
    #[schema(example = "eb_k3f9qa")]
    pub prefix: String,
    /// Scopes held.
    pub scopes: Vec<String>,
    /// Whether it works now.
    pub status: ApiKeyStatus,
    /// Created.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Stops working at.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Last used (to the minute).
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revoked at.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        let status = access::status(&row, shared_db::now());
        ApiKey {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
            status,
            created_at: row.created_at.and_utc(),
            expires_at: row.expires_at.map(|t| t.and_utc()),
            last_used_at: row.last_used_at.map(|t| t.and_utc()),
            revoked_at: row.revoked_at.map(|t| t.and_utc()),
        }
    }
}

/// A newly created key: `key` appears in this response only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key's details.
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The key. Store it now: it cannot be shown again.
    #[schema(example = "eb_k3f9qa...")]
    pub key: String,
}

/// One page of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Keys, newest first unless `order=asc`.
    pub items: Vec<ApiKey>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Creates a key; its secret is returned once.
#[utoipa::path(
    tag = "api-keys",
    request_body = CreateApiKey,
    security(("api_key" = ["api-keys:admin"])),
    responses(
        (status = 201, description = "Created; `key` is shown only now", body = CreatedApiKey),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `api-keys:admin`, or one of the scopes it asks to grant (a key grants only scopes it holds), or the new key would outlive it (`expiry_not_allowed`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, scopes or expiry", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("")]
async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let body = body.into_inner();
    let mut conn = state.pool.get().await?;
    let issued = state
        .api_keys
        .create(&mut conn, &body.name, &body.scopes, body.expires_at, Some(&principal.0))
        .await?;
    let location = format!("/api/v1/api-keys/{}", issued.row.id);
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, location))
        .json(CreatedApiKey {
            key: issued.secret.expose_secret().to_owned(),
            api_key: issued.row.into(),
        }))
}

/// Lists keys a page at a time (without secrets).
#[utoipa::path(
    tag = "api-keys",
    params(KeyFilter),
    security(("api_key" = ["api-keys:admin"])),
    responses(
        (status = 200, description = "One page of keys", body = ApiKeyList),
        (status = 400, description = "Bad `limit` (1 to 500) or `cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `api-keys:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("")]
async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    filter: web::Query<KeyFilter>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let mut conn = state.pool.get().await?;
    let page = state.api_keys.list(&mut conn, &filter).await?;
    Ok(HttpResponse::Ok().json(ApiKeyList {
        items: page.items.into_iter().map(ApiKey::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Shows one key (without its secret).
#[utoipa::path(
    tag = "api-keys",
    params(("id" = String, Path, description = "Key id")),
    security(("api_key" = ["api-keys:admin"])),
    responses(
        (status = 200, description = "The key", body = ApiKey),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `api-keys:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/{id}")]
async fn show(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let mut conn = state.pool.get().await?;
    let row = state.api_keys.show(&mut conn, &id).await?;
    Ok(HttpResponse::Ok().json(ApiKey::from(row)))
}

/// Revokes a key at once; revoking a revoked key changes nothing.
#[utoipa::path(
    tag = "api-keys",
    params(("id" = String, Path, description = "Key id")),
    security(("api_key" = ["api-keys:admin"])),
    responses(
        (status = 200, description = "The revoked key", body = ApiKey),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `api-keys:admin`, or a scope of the key to revoke (a key revokes only keys it could have created)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/{id}")]
async fn revoke(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let mut conn = state.pool.get().await?;
    let row = state.api_keys.revoke(&mut conn, &id, Some(&principal.0)).await?;
    Ok(HttpResponse::Ok().json(ApiKey::from(row)))
}

/// Registers the API key routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(show).service(revoke);
}
