//! `/api/v1/licenses`: administration (scopes `licenses:admin`, `licenses:read`) and the
//! licence-holder calls, which authenticate with the licence key itself and are rate
//! limited per client address and per key.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, delete, get, patch, post, web};
use futures_util::TryFutureExt;
use license_core::LicenseError;
use license_core::model::{
    ActivateRequest, Checkout, CheckoutRequest, Deactivated, IssueLicense, License, LicenseFilter, LicensePage,
    LicensePatch, Machine, MachineAnswer, MachineQuery, MachineRequest, PublicKey, Renew, ValidateRequest, Validation,
    valid_nonce,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use web_kit::respond::located;

use super::json::Json;
use crate::auth::Principal;
use crate::error::{ApiError, Problem, Reply};
use crate::http::AuthProblems;
use crate::state::AppState;

const ADMIN: &str = "licenses:admin";
const READ: &[&str] = &["licenses:read", ADMIN];

/// A newly issued licence: `key` appears in this response only.
#[derive(Serialize, ToSchema)]
pub struct IssuedLicense {
    /// The licence.
    #[serde(flatten)]
    pub license: License,
    /// The licence key (`XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`). Give it to the
    /// customer now: it cannot be shown again.
    pub key: String,
}

impl std::fmt::Debug for IssuedLicense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLicense")
            .field("license", &self.license)
            .field("key", &"***")
            .finish()
    }
}

/// A page of a licence's machines.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineList {
    /// Machines, newest first.
    pub items: Vec<Machine>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Problems every licence-holder route can answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum HolderProblems {
    /// Malformed JSON.
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem),
    /// The body did not arrive within `PUBLIC_BODY_TIMEOUT_SECS`.
    #[response(status = 408, content_type = "application/problem+json")]
    TooSlow(Problem),
    /// Body too large.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Not JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// Too many calls from this address or for this key; see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// Database unavailable.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Serves a holder call: the limits on the caller's address and on `key` first, then
/// `call`, whose answer is sent with `status` (204 when it has no body), signed:
/// `EB-Signature: kid=<kid>; sig=<base64url>`, the licence signing key's Ed25519
/// signature over the exact body bytes. Problems are signed too, and echo the request's
/// `nonce` as answers do, so a client can refuse any unsigned or replayed answer. (Only
/// what never reaches the handler, such as malformed JSON, is unsigned.)
async fn holder<T: Serialize>(
    state: &AppState,
    req: &HttpRequest,
    (key, nonce): (&str, &Option<String>),
    status: StatusCode,
    call: impl Future<Output = Result<Option<T>, LicenseError>>,
) -> HttpResponse {
    let address = crate::net::client_ip(req, &state.config.server.trusted_proxies);
    let answer = match state.holder_limits.check(address, key) {
        Ok(()) => call.await.map_err(ApiError::from),
        Err(e) => Err(e.into()),
    };
    let (mut res, body) = match answer {
        Ok(Some(v)) => match serde_json::to_vec(&v) {
            Ok(body) => (
                HttpResponse::build(status).content_type("application/json").finish(),
                body,
            ),
            Err(e) => return ApiError::internal(e).error_response(),
        },
        Ok(None) => (HttpResponse::NoContent().finish(), Vec::new()),
        Err(e) => {
            let res = e.error_response();
            let mut problem = serde_json::to_value(e.problem()).unwrap_or_default();
            if let (Some(n), Some(fields)) = (valid_nonce(nonce), problem.as_object_mut()) {
                fields.insert("nonce".into(), n.into());
            }
            (res, serde_json::to_vec(&problem).unwrap_or_default())
        }
    };
    match state.licenses.sign_answer(&body).await {
        Ok(signature) => {
            if let Ok(v) = HeaderValue::from_str(&signature) {
                res.headers_mut().insert(HeaderName::from_static("eb-signature"), v);
            }
        }
        Err(e) => return ApiError::from(e).error_response(),
    }
    res.set_body(BoxBody::new(body))
}

/// Issues a licence. Returns its key, once.
#[utoipa::path(
    tag = "licenses",
    request_body = IssueLicense,
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 201, description = "Issued; `key` is shown only now", body = IssuedLicense),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (see `field`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("")]
async fn issue(state: web::Data<AppState>, principal: Principal, body: Json<IssueLicense>) -> Reply {
    principal.require(ADMIN)?;
    let (license, key) = state.licenses.issue(body.into_inner(), &principal.actor()).await?;
    let location = format!("/api/v1/licenses/{}", license.id);
    let key = key.as_str().to_owned();
    let issued = IssuedLicense { license, key };
    Ok(located(StatusCode::CREATED, Some(location), false, issued))
}

/// Lists licences, newest first unless `order=asc`, with filters and a cursor.
#[utoipa::path(
    tag = "licenses",
    params(LicenseFilter),
    security(("api_key" = ["licenses:read"]), ("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "One page", body = LicensePage),
        (status = 400, description = "Bad query, `limit` (1 to 500) or `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("")]
async fn list(state: web::Data<AppState>, principal: Principal, filter: web::Query<LicenseFilter>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.licenses.list(&filter).await?))
}

/// Publishes the Ed25519 public key that verifies licence certificates.
#[utoipa::path(
    tag = "licenses",
    responses(
        (status = 200, description = "The current key", body = PublicKey),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/public-key")]
async fn public_key(state: web::Data<AppState>) -> Reply {
    Ok(HttpResponse::Ok().json(state.licenses.public_key().await?))
}

/// Validates a licence key. Always 200 for a well-formed request: `valid` and `code`
/// (checked in the order `not_found`, `revoked`, `suspended`, `expired`,
/// `product_scope_mismatch`, `no_machine`, `fingerprint_scope_mismatch`,
/// `heartbeat_dead`, `too_many_machines`, `entitlements_missing`, then `grace_period`,
/// `expired_maintained` or `valid`) say why. The answer is signed (`EB-Signature`)
/// and echoes `nonce`.
#[utoipa::path(
    tag = "licenses",
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "The outcome (`valid` is true for `valid`, `grace_period` and `expired_maintained`)", body = Validation, headers(("EB-Signature" = String, description = "`kid=<kid>; sig=<base64url>`: Ed25519 over the body by the licence signing key"))),
        (status = 422, description = "JSON of the wrong shape", body = Problem, content_type = "application/problem+json"),
        HolderProblems,
    )
)]
#[post("/validate")]
async fn validate(state: web::Data<AppState>, req: HttpRequest, body: Json<ValidateRequest>) -> HttpResponse {
    let call = state.licenses.validate(&body).map_ok(Some);
    holder(&state, &req, (&body.key, &body.nonce), StatusCode::OK, call).await
}

/// Activates a machine on the licence the key opens.
#[utoipa::path(
    tag = "licenses",
    request_body = ActivateRequest,
    responses(
        (status = 201, description = "Activated", body = MachineAnswer, headers(("EB-Signature" = String, description = "`kid=<kid>; sig=<base64url>`: Ed25519 over the body by the licence signing key"))),
        (status = 401, description = "The key is malformed or unknown", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The licence is `suspended`, `revoked` or `expired`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The fingerprint is already activated", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`too_many_machines`, or an invalid field", body = Problem, content_type = "application/problem+json"),
        HolderProblems,
    )
)]
#[post("/activate")]
async fn activate(state: web::Data<AppState>, req: HttpRequest, body: Json<ActivateRequest>) -> HttpResponse {
    let call = state.licenses.activate(&body).map_ok(Some);
    holder(&state, &req, (&body.key, &body.nonce), StatusCode::CREATED, call).await
}

/// Deactivates a machine of the licence the key opens.
#[utoipa::path(
    tag = "licenses",
    request_body = MachineRequest,
    responses(
        (status = 200, description = "Deactivated (asked with a `nonce`)", body = Deactivated, headers(("EB-Signature" = String, description = "`kid=<kid>; sig=<base64url>`: Ed25519 over the body by the licence signing key"))),
        (status = 204, description = "Deactivated (asked without a `nonce`)", headers(("EB-Signature" = String, description = "`kid=<kid>; sig=<base64url>`: Ed25519 over the body by the licence signing key"))),
        (status = 401, description = "The key is malformed or unknown", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such machine on the licence", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "JSON of the wrong shape", body = Problem, content_type = "application/problem+json"),
        HolderProblems,
    )
)]
#[post("/deactivate")]
async fn deactivate(state: web::Data<AppState>, req: HttpRequest, body: Json<MachineRequest>) -> HttpResponse {
    let call = state.licenses.deactivate(&body);
    holder(&state, &req, (&body.key, &body.nonce), StatusCode::OK, call).await
}

/// Records a heartbeat from a machine. A revoked, suspended or expired licence answers
/// 403 with its code (`revoked`, `suspended`, `expired`), as activation does, and
/// nothing is recorded.
#[utoipa::path(
    tag = "licenses",
    request_body = MachineRequest,
    responses(
        (status = 200, description = "Recorded (or a culled machine brought back)", body = MachineAnswer, headers(("EB-Signature" = String, description = "`kid=<kid>; sig=<base64url>`: Ed25519 over the body by the licence signing key"))),
        (status = 401, description = "The key is malformed or unknown", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The licence is `suspended`, `revoked` or `expired`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such machine on the licence", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "JSON of the wrong shape", body = Problem, content_type = "application/problem+json"),
        HolderProblems,
    )
)]
#[post("/heartbeat")]
async fn heartbeat(state: web::Data<AppState>, req: HttpRequest, body: Json<MachineRequest>) -> HttpResponse {
    let call = state.licenses.heartbeat(&body).map_ok(Some);
    holder(&state, &req, (&body.key, &body.nonce), StatusCode::OK, call).await
}

/// Signs an offline certificate for a licence that validates now.
#[utoipa::path(
    tag = "licenses",
    request_body = CheckoutRequest,
    responses(
        (status = 200, description = "The certificate", body = Checkout, headers(("EB-Signature" = String, description = "`kid=<kid>; sig=<base64url>`: Ed25519 over the body by the licence signing key"))),
        (status = 401, description = "The key is malformed or unknown", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The licence does not validate (the code says why)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `ttl`, `too_many_machines` or JSON of the wrong shape", body = Problem, content_type = "application/problem+json"),
        HolderProblems,
    )
)]
#[post("/checkout")]
async fn checkout(state: web::Data<AppState>, req: HttpRequest, body: Json<CheckoutRequest>) -> HttpResponse {
    let call = state.licenses.checkout(&body).map_ok(Some);
    holder(&state, &req, (&body.key, &body.nonce), StatusCode::OK, call).await
}

/// One licence.
#[utoipa::path(
    tag = "licenses",
    params(("id" = String, Path, description = "Licence id")),
    security(("api_key" = ["licenses:read"]), ("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "The licence", body = License),
        (status = 404, description = "No such licence", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{id}")]
async fn show(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.licenses.get(&id).await?))
}

/// Changes name, owner, expiry, machine limit, entitlements, metadata or policy.
/// Absent fields stay; `null` clears `expires_at`, `max_machines` and
/// `heartbeat_interval_secs`.
#[utoipa::path(
    tag = "licenses",
    params(("id" = String, Path, description = "Licence id")),
    request_body = LicensePatch,
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "The changed licence", body = License),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such licence", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (see `field`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[patch("/{id}")]
async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: Json<LicensePatch>,
) -> Reply {
    principal.require(ADMIN)?;
    let answer = state
        .licenses
        .update(&id, body.into_inner(), &principal.actor())
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Suspends an active licence.
#[utoipa::path(
    tag = "licenses",
    params(("id" = String, Path, description = "Licence id")),
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "Suspended", body = License),
        (status = 404, description = "No such licence", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not active", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("/{id}/suspend")]
async fn suspend(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require(ADMIN)?;
    Ok(HttpResponse::Ok().json(state.licenses.suspend(&id, &principal.actor()).await?))
}

/// Reinstates a suspended licence.
#[utoipa::path(
    tag = "licenses",
    params(("id" = String, Path, description = "Licence id")),
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "Active again", body = License),
        (status = 404, description = "No such licence", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not suspended", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("/{id}/reinstate")]
async fn reinstate(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require(ADMIN)?;
    Ok(HttpResponse::Ok().json(state.licenses.reinstate(&id, &principal.actor()).await?))
}

/// Revokes a licence for good.
#[utoipa::path(
    tag = "licenses",
    params(("id" = String, Path, description = "Licence id")),
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "Revoked", body = License),
        (status = 404, description = "No such licence", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already revoked", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("/{id}/revoke")]
async fn revoke(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require(ADMIN)?;
    Ok(HttpResponse::Ok().json(state.licenses.revoke(&id, &principal.actor()).await?))
}

/// Renews: `duration` extends from the later of now and the current expiry;
/// `expires_at` sets the date.
#[utoipa::path(
    tag = "licenses",
    params(("id" = String, Path, description = "Licence id")),
    request_body = Renew,
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "Renewed", body = License),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such licence", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Revoked", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad duration or date", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("/{id}/renew")]
async fn renew(state: web::Data<AppState>, principal: Principal, id: web::Path<String>, body: Json<Renew>) -> Reply {
    principal.require(ADMIN)?;
    Ok(HttpResponse::Ok().json(state.licenses.renew(&id, body.into_inner(), &principal.actor()).await?))
}

/// The machines activated on a licence.
#[utoipa::path(
    tag = "licenses",
    params(("id" = String, Path, description = "Licence id"), MachineQuery),
    security(("api_key" = ["licenses:read"]), ("api_key" = ["licenses:admin"])),
    responses(
        (status = 200, description = "Its machines, a page", body = MachineList),
        (status = 400, description = "Malformed query, path or body, or a refused `limit` (1 to 500) or `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such licence", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{id}/machines")]
async fn machines(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    query: web::Query<MachineQuery>,
) -> Reply {
    principal.require_any(READ)?;
    let page = state.licenses.machines(&id, &query).await?;
    Ok(HttpResponse::Ok().json(MachineList {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Removes a machine from a licence, freeing its seat.
#[utoipa::path(
    tag = "licenses",
    params(
        ("id" = String, Path, description = "Licence id"),
        ("machine_id" = String, Path, description = "Machine id"),
    ),
    security(("api_key" = ["licenses:admin"])),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such machine on the licence", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[delete("/{id}/machines/{machine_id}")]
async fn remove_machine(state: web::Data<AppState>, principal: Principal, path: web::Path<(String, String)>) -> Reply {
    principal.require(ADMIN)?;
    let (id, machine_id) = path.into_inner();
    state
        .licenses
        .remove_machine(&id, &machine_id, &principal.actor())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers the licence routes (fixed paths before `/{id}`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(issue)
        .service(list)
        .service(public_key)
        .service(validate)
        .service(activate)
        .service(deactivate)
        .service(heartbeat)
        .service(checkout)
        .service(show)
        .service(update)
        .service(suspend)
        .service(reinstate)
        .service(revoke)
        .service(renew)
        .service(machines)
        .service(remove_machine);
}
