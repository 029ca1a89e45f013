//! `/healthz` (the process is up) and `/readyz` (it can serve: the database answers; the
//! body also says how each channel leaves this gateway).

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{Problem, Reply};
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
    /// How each channel leaves this gateway (readiness only). Read from the
    /// configuration: no transport is contacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transports: Option<Transports>,
}

/// The transport in force per channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transports {
    /// `ses`, `dev` (captured in the database, sent to no one) or `not_configured`
    /// (sends answer 503 `not_configured`).
    pub mail: mailer::transport::MailMode,
    /// `slack`, `dev` (captured in the database, never sent to Slack) or `not_configured`
    /// (posts answer 503 `not_configured`).
    pub slack: slack_notify::transport::SlackMode,
    /// `s3` (`S3_BUCKET`) or `local` (the folder `BLOB_DIR`).
    #[schema(example = "local")]
    pub storage: &'static str,
    /// The database connection's TLS mode (`REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`),
    /// or `none` (plain text on MySQL; SQLite is a file).
    #[schema(example = "none")]
    pub database_tls: &'static str,
}

impl Transports {
    fn of(state: &AppState) -> Self {
        Self {
            mail: state.mail.mode(),
            slack: state.slack.mode(),
            storage: if state.config.storage.s3.is_some() {
                "s3"
            } else {
                "local"
            },
            database_tls: state.config.database.url.tls().map_or("none", |t| t.mode().as_str()),
        }
    }
}

/// Liveness: answers while the process runs.
#[utoipa::path(tag = "health", responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        database: None,
        transports: None,
    })
}

/// Readiness: answers 200 only when the database does (a cheap query), and lists each
/// channel's transport (`ses`/`slack`, `dev` or `not_configured`; a channel that is not
/// configured does not make the gateway unready).
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> Reply {
    state.pool.check().await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
        database: Some(state.pool.backend()),
        transports: Some(Transports::of(&state)),
    }))
}

/// Registers the health routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz);
}
