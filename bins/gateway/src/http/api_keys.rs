//! `/api/v1/api-keys`: create (the key is shown once), list, show and revoke API keys,
//! over the `access` crate. Every route needs the `api-keys:admin` scope.

use access::KeyFilter;
pub use access::view::ApiKey;
use access::view::{ApiKeyList, CreateApiKey, CreatedApiKey};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, web};
use utoipa_actix_web::service_config::ServiceConfig;
use web_kit::respond::located;

use super::json::Json;
use crate::auth::Principal;
use crate::error::{Problem, Reply};
use crate::state::AppState;

const SCOPE: &str = "api-keys:admin";

/// Problems every API key route can answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // read by the OpenAPI derive only
enum KeyProblems {
    /// No valid API key
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Database unavailable
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Creates a key; its secret is returned once.
#[utoipa::path(
    tag = "api-keys",
    request_body = CreateApiKey,
    security(("api_key" = ["api-keys:admin"])),
    responses(
        (status = 201, description = "Created; `key` is shown only now", body = CreatedApiKey),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `api-keys:admin`, or one of the scopes it asks to grant (a key grants only scopes it holds), or the new key would outlive it (`expiry_not_allowed`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, scopes or expiry", body = Problem, content_type = "application/problem+json"),
        KeyProblems,
    )
)]
#[post("")]
async fn create(state: web::Data<AppState>, principal: Principal, body: Json<CreateApiKey>) -> Reply {
    principal.require(SCOPE)?;
    let body = body.into_inner();
    let mut conn = state.pool.get().await?;
    let issued = state
        .api_keys
        .create(&mut conn, &body.name, &body.scopes, body.expires_at, Some(&principal.0))
        .await?;
    let location = format!("/api/v1/api-keys/{}", issued.row.id);
    Ok(located(
        StatusCode::CREATED,
        Some(location),
        false,
        CreatedApiKey::from(issued),
    ))
}

/// Lists keys a page at a time (without secrets).
#[utoipa::path(
    tag = "api-keys",
    params(KeyFilter),
    security(("api_key" = ["api-keys:admin"])),
    responses(
        (status = 200, description = "One page of keys", body = ApiKeyList),
        (status = 400, description = "Bad `limit` (1 to 500) or `cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `api-keys:admin`", body = Problem, content_type = "application/problem+json"),
        KeyProblems,
    )
)]
#[get("")]
async fn list(state: web::Data<AppState>, principal: Principal, filter: web::Query<KeyFilter>) -> Reply {
    principal.require(SCOPE)?;
    let mut conn = state.pool.get().await?;
    let page = state.api_keys.list(&mut conn, &filter).await?;
    Ok(HttpResponse::Ok().json(ApiKeyList::from(page)))
}

/// Shows one key (without its secret).
#[utoipa::path(
    tag = "api-keys",
    params(("id" = String, Path, description = "Key id")),
    security(("api_key" = ["api-keys:admin"])),
    responses(
        (status = 200, description = "The key", body = ApiKey),
        (status = 403, description = "The key lacks `api-keys:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        KeyProblems,
    )
)]
#[get("/{id}")]
async fn show(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
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
        (status = 403, description = "The key lacks `api-keys:admin`, or a scope of the key to revoke (a key revokes only keys it could have created)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        KeyProblems,
    )
)]
#[delete("/{id}")]
async fn revoke(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require(SCOPE)?;
    let mut conn = state.pool.get().await?;
    let row = state.api_keys.revoke(&mut conn, &id, Some(&principal.0)).await?;
    Ok(HttpResponse::Ok().json(ApiKey::from(row)))
}

/// Registers the API key routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(show).service(revoke);
}
