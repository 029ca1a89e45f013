//! HTTP scopes, the OpenAPI document and the fallback for unknown routes.

pub mod api_keys;
pub mod blobs;
pub mod bridge;
pub mod data;
pub mod emails;
pub mod events;
pub mod health;
pub use web_kit::json;
pub mod licenses;
pub mod overview;
pub mod policies;
pub mod slack;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
pub use crate::routes::{RouteTable, is_signed_storage_url};

/// The document's fixed parts; paths are collected from the registered handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Event Bridge",
        description = "Licences, email, Slack alerts, shared storage and shared data for desktop clients, the web platform and AI services. Authenticate with `Authorization: Bearer <API key>`; every error is an RFC 9457 problem document.",
    ),
    components(schemas(Problem, shared_db::paging::Order)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "api-keys", description = "API keys and their scopes (scope `api-keys:admin`)"),
        (name = "data", description = "Shared JSON documents for client and web, with versions, merge patch and schemas (scopes `data:read:<collection>`, `data:write:<collection>`)"),
        (name = "events", description = "The audit trail of every change (scope `events:read`): pages and a live Server-Sent Events tail"),
        (name = "blobs", description = "Shared storage for clients, the web and AI services: streamed uploads and downloads, ranges, listing, signed URLs (scopes `blobs:read:<namespace>`, `blobs:write:<namespace>`)"),
        (name = "emails", description = "Email through Amazon SES: a durable outbox with idempotency, templates, attachments, status history, bounce and complaint handling and a suppression list (scopes `emails:send`, `emails:read`, `emails:admin`)"),
        (name = "slack", description = "Slack alerts: one layout per level, delivered in per-channel order at Slack's pace (scopes `slack:post`, `slack:read`)"),
        (name = "bridge", description = "Rules that turn events into Slack messages and emails (scope `rules:admin`), and signed outgoing webhooks (scope `webhooks:admin`)"),
        (name = "licenses", description = "Licences for `client` and `platform`: administration (scopes `licenses:admin`, `licenses:read`) and the licence-holder calls, authenticated by the licence key, whose answers are signed (`EB-Signature`)"),
        (name = "overview", description = "Counts for the web console's first page: licences, emails and Slack messages by status, storage namespaces, jobs waiting (each part under its section's scope)"),
        (name = "policies", description = "Reusable licence terms: machine limits, heartbeats and culling, grace periods, expiry strategy and basis (scopes `licenses:admin`, `licenses:read`)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An Event Bridge API key (`eb_...`)"))
                    .build(),
            ),
        );
    }
}

/// Problems any operation can answer, added where an operation does not name them: 400
/// for a malformed query, path or body, 413 / 415 for operations that take a body, and
/// 429 for operations behind an API key.
/// Applied to the finished document (the paths are collected after `ApiDoc`'s own
/// modifiers run).
pub struct CommonProblems;

impl Modify for CommonProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ];
            for op in ops.into_iter().flatten() {
                let has_body = op.request_body.is_some();
                let keyed = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut op.responses.responses;
                if keyed {
                    responses.entry("429".into()).or_insert_with(|| {
                        problem("Too many failed keys from this address (see `Retry-After`)").into()
                    });
                }
                responses
                    .entry("400".into())
                    .or_insert_with(|| problem("Malformed query, path or body").into());
                if has_body {
                    responses
                        .entry("413".into())
                        .or_insert_with(|| problem("Body too large").into());
                    responses
                        .entry("415".into())
                        .or_insert_with(|| problem("Unsupported content type").into());
                }
            }
        }
    }
}

/// Problems every route behind an API key can answer (for `responses(...)`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // read by the OpenAPI derive only
pub enum AuthProblems {
    /// No valid API key.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The key lacks the scope.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Too many failed keys from this address (see `Retry-After`).
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyFailures(Problem),
    /// Database unavailable.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// The method an object URL the gateway signed was signed for: `Some` when `path` is an
/// object's (`/api/v1/blobs/{namespace}/{key}`) and `query` carries the three signature
/// parameters its handler then checks (`X-EB-Method`, `X-EB-Expires`, `X-EB-Signature`),
/// so the request is authorised by that signature and by nothing else.
pub fn signed_storage_method(path: &str, query: &str) -> Option<String> {
    if !path
        .strip_prefix("/api/v1/blobs/")
        .is_some_and(|rest| rest.contains('/'))
    {
        return None;
    }
    let (mut method, mut expires, mut signature) = (None, false, false);
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "X-EB-Method" => method = Some(value.into_owned()),
            "X-EB-Expires" => expires = true,
            "X-EB-Signature" => signature = true,
            _ => {}
        }
    }
    method.filter(|_| expires && signature)
}

/// Licence bodies are small, and the holder routes (validate, activate, ...) read them
/// before any key is checked: a flood of slow bodies holds at most this much each.
pub const LICENSE_JSON_LIMIT: usize = 64 * 1024;

/// SNS notifications are at most 256 KiB; the SNS route reads them before their
/// signature is checked.
pub const SNS_BODY_LIMIT: usize = 256 * 1024 + 4096;

/// Registers every documented route; email bodies (which carry attachments) may be up
/// to `email_json_limit` bytes, licence bodies up to `LICENSE_JSON_LIMIT` (or `max_json`
/// when smaller).
pub fn configure(email_json_limit: usize, max_json: usize) -> impl Fn(&mut ServiceConfig) + Clone {
    move |cfg| routes(cfg, email_json_limit, max_json)
}

fn routes(cfg: &mut ServiceConfig, email_json_limit: usize, max_json: usize) {
    let json_limit = json::JsonLimit;
    cfg.service(
        utoipa_actix_web::scope("/api/v1/emails")
            .app_data(json_limit(email_json_limit))
            .app_data(web::PayloadConfig::new(SNS_BODY_LIMIT))
            .configure(emails::configure),
    );
    cfg.service(utoipa_actix_web::scope("/api/v1/email-templates").configure(emails::configure_templates));
    cfg.service(utoipa_actix_web::scope("/api/v1/email-suppressions").configure(emails::configure_suppressions));
    cfg.service(utoipa_actix_web::scope("/api/v1/rules").configure(bridge::configure_rules));
    cfg.service(utoipa_actix_web::scope("/api/v1/webhooks").configure(bridge::configure_webhooks));
    cfg.configure(health::configure);
    cfg.service(utoipa_actix_web::scope("/api/v1/api-keys").configure(api_keys::configure));
    cfg.service(
        utoipa_actix_web::scope("/api/v1/licenses")
            .app_data(json_limit(LICENSE_JSON_LIMIT.min(max_json)))
            .configure(licenses::configure),
    );
    cfg.service(
        utoipa_actix_web::scope("/api/v1/policies")
            .app_data(json_limit(LICENSE_JSON_LIMIT.min(max_json)))
            .configure(policies::configure),
    );
    cfg.service(utoipa_actix_web::scope("/api/v1/slack").configure(slack::configure));
    cfg.service(utoipa_actix_web::scope("/api/v1/blobs").configure(blobs::configure));
    cfg.service(utoipa_actix_web::scope("/api/v1/events").configure(events::configure));
    cfg.service(utoipa_actix_web::scope("/api/v1/data").configure(data::configure));
    cfg.service(utoipa_actix_web::scope("/api/v1/overview").configure(overview::configure));
}

/// The `Idempotency-Key` header, checked, with the hash of the request it guards and the
/// API key it belongs to: keys are per API key, so one caller's key never replays,
/// conflicts with or blocks another's request.
pub struct Idempotency {
    owner: shared_db::idempotency::Owner,
    key: String,
    hash: String,
}

impl Idempotency {
    /// Reads the header for `principal`; `body` is hashed only when a key was sent.
    pub fn of(
        req: &HttpRequest,
        principal: &Principal,
        body: &impl serde::Serialize,
    ) -> Result<Option<Self>, ApiError> {
        match req.headers().get("idempotency-key") {
            None => Ok(None),
            Some(v) => match v.to_str() {
                Ok(k) if shared_db::idempotency::valid_key(k) => Ok(Some(Self {
                    owner: shared_db::idempotency::Owner::ApiKey(principal.key_id.clone()),
                    key: k.to_owned(),
                    hash: shared_db::idempotency::request_hash(&serde_json::to_vec(body).unwrap_or_default()),
                })),
                _ => Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                )),
            },
        }
    }

    /// The key as the services take it.
    pub fn key(this: &Option<Self>) -> Option<shared_db::idempotency::Key<'_>> {
        this.as_ref().map(|i| shared_db::idempotency::Key {
            owner: &i.owner,
            key: &i.key,
            hash: &i.hash,
        })
    }
}

/// Answers every request no route took: 405 for a known path, else 404.
pub async fn fallback(req: HttpRequest, routes: web::Data<RouteTable>) -> Result<HttpResponse, ApiError> {
    Err(match routes.allowed(req.path()) {
        Some(methods) if !methods.contains(req.method()) => {
            let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            let error = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed here; allowed: {allow}", req.method()),
            );
            match HeaderValue::from_str(&allow) {
                Ok(v) => error.with_header(header::ALLOW, v),
                Err(_) => error,
            }
        }
        _ => ApiError::not_found("route_not_found", format!("no route matches {}", req.path())),
    })
}

/// `/docs` without the slash: Swagger UI lives at `/docs/`.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}
