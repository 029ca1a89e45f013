//! `/api/v1/emails`, `/api/v1/email-templates`, `/api/v1/email-suppressions`: send
//! through the durable outbox, follow each message's status, manage templates and the
//! suppression list, and take SES notifications from SNS.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use mailer::model::{
    AddSuppression, BatchAccepted, Email, EmailFilter, EmailPage, EmailTemplate, SendEmail, SnsOutcome, Suppression,
    SuppressionFilter, SuppressionPage, TemplateBody, TemplatePage,
};
use shared_db::paging::PageQuery;
use utoipa_actix_web::service_config::ServiceConfig;
use web_kit::respond::{created_or_ok, located};

use super::json::Json;
use crate::auth::Principal;
use crate::error::{Problem, Reply};
use crate::http::{AuthProblems, Idempotency};
use crate::state::AppState;

const SEND: &str = "emails:send";
const ADMIN: &str = "emails:admin";
const READ: &[&str] = &["emails:read", SEND, ADMIN];

/// Queues a message. Answers 202 once it is stored with its delivery job; it is sent
/// through SES in the background (or captured by the dev mailbox: status `captured`),
/// retried through throttling and outages, split into groups of 50 recipients. With no
/// mail transport configured it answers 503 `not_configured` and stores nothing.
#[utoipa::path(
    tag = "emails",
    request_body = SendEmail,
    params(("Idempotency-Key" = Option<String>, Header, description = "Per API key: repeats with the same body within 24 h return the first message; another body is a 409")),
    security(("api_key" = ["emails:send"])),
    responses(
        (status = 202, description = "Queued; `Idempotent-Replayed: true` on a repeat", body = mailer::model::Accepted),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or built message too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (see `field`), unknown template, missing template variable, or a template past its rendering bounds (`template_limit_exceeded`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 503, description = "`not_configured`: no mail transport (set SES_SENDER_EMAIL and AWS_SES_REGION, or MAIL_TRANSPORT=dev); nothing was stored. `service_unavailable`: the database is unavailable (retry after `Retry-After`). `busy`: no rendering slot came free (retry after `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("")]
async fn send(state: web::Data<AppState>, principal: Principal, req: HttpRequest, body: Json<SendEmail>) -> Reply {
    principal.require(SEND)?;
    let body = body.into_inner();
    let idem = Idempotency::of(&req, &principal, &body)?;
    let actor = principal.actor();
    let (accepted, replay) = state.mail.submit(body, Idempotency::key(&idem), &actor).await?;
    let location = format!("/api/v1/emails/{}", accepted.id);
    Ok(located(StatusCode::ACCEPTED, Some(location), replay, accepted))
}

/// Queues up to 100 messages at once, all or none: a problem in any names its index
/// in `field` (`[3].to[0]`).
#[utoipa::path(
    tag = "emails",
    request_body = Vec<SendEmail>,
    params(("Idempotency-Key" = Option<String>, Header, description = "Per API key: repeats with the same body within 24 h return the first batch")),
    security(("api_key" = ["emails:send"])),
    responses(
        (status = 202, description = "Queued, in request order", body = BatchAccepted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid message (see `field`), or a template past its rendering bounds (`template_limit_exceeded`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 503, description = "`not_configured`: no mail transport (set SES_SENDER_EMAIL and AWS_SES_REGION, or MAIL_TRANSPORT=dev); nothing was stored. `service_unavailable`: the database is unavailable (retry after `Retry-After`). `busy`: no rendering slot came free (retry after `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/batch")]
async fn send_batch(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Json<Vec<SendEmail>>,
) -> Reply {
    principal.require(SEND)?;
    let body = body.into_inner();
    let idem = Idempotency::of(&req, &principal, &body)?;
    let actor = principal.actor();
    let (batch, replay) = state.mail.submit_batch(body, Idempotency::key(&idem), &actor).await?;
    Ok(located(StatusCode::ACCEPTED, None, replay, batch))
}

/// Lists messages, newest first.
#[utoipa::path(
    tag = "emails",
    params(EmailFilter),
    security(("api_key" = ["emails:read"]), ("api_key" = ["emails:send"]), ("api_key" = ["emails:admin"])),
    responses(
        (status = 200, description = "One page", body = EmailPage),
        (status = 400, description = "Bad query: `limit` outside 1 to 500 or a foreign `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad address", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("")]
async fn list(state: web::Data<AppState>, principal: Principal, filter: web::Query<EmailFilter>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.mail.list(&filter).await?))
}

/// One message: its status, SES message ids, suppressed recipients and full history
/// (queued, sending, sent or captured, delivered, failed, bounced, complained,
/// suppressed).
#[utoipa::path(
    tag = "emails",
    params(("id" = String, Path, description = "Message id")),
    security(("api_key" = ["emails:read"]), ("api_key" = ["emails:send"]), ("api_key" = ["emails:admin"])),
    responses(
        (status = 200, description = "The message", body = Email),
        (status = 404, description = "No such message", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{id}")]
async fn show(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.mail.get(&id).await?))
}

/// The exact MIME message (dev mailbox mode only).
#[utoipa::path(
    tag = "emails",
    params(("id" = String, Path, description = "Message id")),
    security(("api_key" = ["emails:read"]), ("api_key" = ["emails:send"]), ("api_key" = ["emails:admin"])),
    responses(
        (status = 200, description = "The message as `message/rfc822`", content_type = "message/rfc822", body = String),
        (status = 404, description = "No such message, or not in the dev mailbox mode", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{id}/raw")]
async fn raw(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require_any(READ)?;
    let raw = state.mail.raw(&id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "message/rfc822"))
        .body(raw))
}

/// Takes SES notifications (bounce, complaint, delivery) delivered by SNS. No API key:
/// the SNS signature is verified against a certificate from a pinned `amazonaws.com`
/// host, the timestamp must be recent, and subscription confirmations are confirmed.
/// A permanent bounce or a complaint suppresses the address.
#[utoipa::path(
    tag = "emails",
    request_body(content = String, description = "The SNS message (SNS sends it as text/plain)", content_type = "text/plain"),
    responses(
        (status = 200, description = "Handled", body = SnsOutcome),
        (status = 400, description = "Not an SNS message", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Bad signature, untrusted certificate host, stale timestamp or foreign topic", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The certificate or subscribe URL could not be fetched (SNS retries)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/events/sns")]
async fn sns(state: web::Data<AppState>, body: web::Bytes) -> Reply {
    Ok(HttpResponse::Ok().json(state.mail.handle_sns(&body).await?))
}

/// Registers the message routes (under `/api/v1/emails`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(send)
        .service(send_batch)
        .service(list)
        .service(show)
        .service(raw)
        .service(sns);
}

/// Creates or replaces a template (201 when created).
#[utoipa::path(
    tag = "emails",
    params(("name" = String, Path, description = "Template name (a-z, A-Z, 0-9, - _ .)")),
    request_body = TemplateBody,
    security(("api_key" = ["emails:admin"])),
    responses(
        (status = 200, description = "Replaced", body = EmailTemplate),
        (status = 201, description = "Created", body = EmailTemplate),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad name, or a part does not parse (see `field`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[put("/{name}")]
async fn put_template(
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    body: Json<TemplateBody>,
) -> Reply {
    principal.require(ADMIN)?;
    let (t, created) = state
        .mail
        .put_template(&name, body.into_inner(), &principal.actor())
        .await?;
    Ok(created_or_ok(created, t))
}

/// One template, with the variables it uses.
#[utoipa::path(
    tag = "emails",
    params(("name" = String, Path, description = "Template name")),
    security(("api_key" = ["emails:read"]), ("api_key" = ["emails:send"]), ("api_key" = ["emails:admin"])),
    responses(
        (status = 200, description = "The template", body = EmailTemplate),
        (status = 404, description = "No such template", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{name}")]
async fn get_template(state: web::Data<AppState>, principal: Principal, name: web::Path<String>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.mail.get_template(&name).await?))
}

/// Deletes a template (messages already rendered from it are unchanged).
#[utoipa::path(
    tag = "emails",
    params(("name" = String, Path, description = "Template name")),
    security(("api_key" = ["emails:admin"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such template", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[delete("/{name}")]
async fn delete_template(state: web::Data<AppState>, principal: Principal, name: web::Path<String>) -> Reply {
    principal.require(ADMIN)?;
    state.mail.delete_template(&name, &principal.actor()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Templates by name.
#[utoipa::path(
    tag = "emails",
    params(PageQuery),
    security(("api_key" = ["emails:read"]), ("api_key" = ["emails:send"]), ("api_key" = ["emails:admin"])),
    responses(
        (status = 200, description = "One page", body = TemplatePage),
        (status = 400, description = "Bad query: `limit` outside 1 to 500 or a foreign `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("")]
async fn list_templates(state: web::Data<AppState>, principal: Principal, paging: web::Query<PageQuery>) -> Reply {
    principal.require_any(READ)?;
    let answer = state
        .mail
        .list_templates(paging.limit, paging.cursor.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Registers the template routes (under `/api/v1/email-templates`).
pub fn configure_templates(cfg: &mut ServiceConfig) {
    cfg.service(list_templates)
        .service(put_template)
        .service(get_template)
        .service(delete_template);
}

/// The suppression list: addresses nothing is sent to.
#[utoipa::path(
    tag = "emails",
    params(SuppressionFilter),
    security(("api_key" = ["emails:read"]), ("api_key" = ["emails:send"]), ("api_key" = ["emails:admin"])),
    responses(
        (status = 200, description = "One page, by address", body = SuppressionPage),
        (status = 400, description = "Bad query: `limit` outside 1 to 500 or a foreign `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("")]
async fn list_suppressions(
    state: web::Data<AppState>,
    principal: Principal,
    filter: web::Query<SuppressionFilter>,
) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.mail.list_suppressions(&filter).await?))
}

/// Suppresses an address by hand (201 when added, 200 when it already was).
#[utoipa::path(
    tag = "emails",
    request_body = AddSuppression,
    security(("api_key" = ["emails:admin"])),
    responses(
        (status = 200, description = "Already suppressed", body = Suppression),
        (status = 201, description = "Added", body = Suppression),
        (status = 422, description = "Not an address", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("")]
async fn add_suppression(state: web::Data<AppState>, principal: Principal, body: Json<AddSuppression>) -> Reply {
    principal.require(ADMIN)?;
    let (s, added) = state
        .mail
        .add_suppression(body.into_inner(), &principal.actor())
        .await?;
    Ok(created_or_ok(added, s))
}

/// Whether an address is suppressed, and why.
#[utoipa::path(
    tag = "emails",
    params(("address" = String, Path, description = "The address")),
    security(("api_key" = ["emails:read"]), ("api_key" = ["emails:send"]), ("api_key" = ["emails:admin"])),
    responses(
        (status = 200, description = "Suppressed", body = Suppression),
        (status = 404, description = "Not suppressed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an address", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{address}")]
async fn get_suppression(state: web::Data<AppState>, principal: Principal, address: web::Path<String>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.mail.suppression(&address).await?))
}

/// Lifts a suppression: the address receives mail again.
#[utoipa::path(
    tag = "emails",
    params(("address" = String, Path, description = "The address")),
    security(("api_key" = ["emails:admin"])),
    responses(
        (status = 204, description = "Lifted"),
        (status = 404, description = "Not suppressed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an address", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[delete("/{address}")]
async fn delete_suppression(state: web::Data<AppState>, principal: Principal, address: web::Path<String>) -> Reply {
    principal.require(ADMIN)?;
    state.mail.delete_suppression(&address, &principal.actor()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers the suppression routes (under `/api/v1/email-suppressions`).
pub fn configure_suppressions(cfg: &mut ServiceConfig) {
    cfg.service(list_suppressions)
        .service(add_suppression)
        .service(get_suppression)
        .service(delete_suppression);
}
