//! `/api/v1/policies`: reusable licence terms (scopes `licenses:admin`, `licenses:read`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use license_core::model::{CreatePolicy, Policy, PolicyFilter, PolicyPage, PolicyPatch};
use utoipa_actix_web::service_config::ServiceConfig;
use web_kit::respond::located;

use super::json::Json;
use crate::auth::Principal;
use crate::error::{Problem, Reply};
use crate::http::AuthProblems;
use crate::state::AppState;

const ADMIN: &str = "licenses:admin";
const READ: &[&str] = &["licenses:read", ADMIN];

/// Creates a policy.
#[utoipa::path(
    tag = "policies",
    request_body = CreatePolicy,
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 201, description = "Created", body = Policy),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (see `field`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("")]
async fn create_policy(state: web::Data<AppState>, principal: Principal, body: Json<CreatePolicy>) -> Reply {
    principal.require(ADMIN)?;
    let policy = state
        .licenses
        .create_policy(body.into_inner(), &principal.actor())
        .await?;
    let location = format!("/api/v1/policies/{}", policy.id);
    Ok(located(StatusCode::CREATED, Some(location), false, policy))
}

/// Lists policies, newest first.
#[utoipa::path(
    tag = "policies",
    params(PolicyFilter),
    security(("api_key" = ["licenses:read"]), ("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "One page", body = PolicyPage),
        (status = 400, description = "Bad query, `limit` (1 to 500) or `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("")]
async fn list_policies(state: web::Data<AppState>, principal: Principal, filter: web::Query<PolicyFilter>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.licenses.policies(&filter).await?))
}

/// One policy, with how many licences name it.
#[utoipa::path(
    tag = "policies",
    params(("id" = String, Path, description = "Policy id")),
    security(("api_key" = ["licenses:read"]), ("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "The policy", body = Policy),
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{id}")]
async fn show_policy(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.licenses.policy(&id).await?))
}

/// Changes a policy; its licences follow at their next use. Absent fields stay;
/// `null` clears the nullable ones.
#[utoipa::path(
    tag = "policies",
    params(("id" = String, Path, description = "Policy id")),
    request_body = PolicyPatch,
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "The changed policy", body = Policy),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (see `field`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[patch("/{id}")]
async fn update_policy(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: Json<PolicyPatch>,
) -> Reply {
    principal.require(ADMIN)?;
    let answer = state
        .licenses
        .update_policy(&id, body.into_inner(), &principal.actor())
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Deletes a policy that no licence names.
#[utoipa::path(
    tag = "policies",
    params(("id" = String, Path, description = "Policy id")),
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Licences name it (`policy_in_use`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[delete("/{id}")]
async fn delete_policy(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require(ADMIN)?;
    state.licenses.delete_policy(&id, &principal.actor()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers the policy routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_policy)
        .service(list_policies)
        .service(show_policy)
        .service(update_policy)
        .service(delete_policy);
}
