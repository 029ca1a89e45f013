//! `/healthz` (the process is up) and `/readyz` (it can serve: the database answers).

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Health status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// The gateway version.
    pub version: &'static str,
    /// `mysql` or `sqlite` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "sqlite")]
    pub database: Option<shared_db::Backend>,
}

/// Liveness: answers while the process runs.
#[utoipa::path(tag = "health", responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        database: None,
    })
}

/// Readiness: answers 200 only when the database does.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.pool.check().await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
        database: Some(state.pool.backend()),
    }))
}

/// Registers the health routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz);
}
