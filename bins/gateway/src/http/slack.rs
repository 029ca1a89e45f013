//! `/api/v1/slack`: post alert messages (stored and queued, delivered in per-channel
//! order), read their status, update posted ones, and preview layouts.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use slack_notify::layout::Rendered;
use slack_notify::model::{Accepted, MessageFilter, MessagePage, MessagePatch, PostMessage, SlackMessage};
use utoipa_actix_web::service_config::ServiceConfig;
use web_kit::respond::located;

use super::json::Json;
use crate::auth::Principal;
use crate::error::{Problem, Reply};
use crate::http::{AuthProblems, Idempotency};
use crate::state::AppState;

const POST: &str = "slack:post";
const READ: &[&str] = &["slack:read", POST];

/// Queues a message. Answers 202 at once; the message is delivered in the order its
/// channel received messages, at Slack's pace, retried through 429s and outages (or
/// captured by the dev sink: status `captured`). With no Slack transport configured it
/// answers 503 `not_configured` and stores nothing.
#[utoipa::path(
    tag = "slack",
    request_body = PostMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "Per API key: repeats with the same body within 24 h return the first message; another body is a 409")),
    security(("api_key" = ["slack:post"])),
    responses(
        (status = 202, description = "Accepted; `Idempotent-Replayed: true` on a repeat", body = Accepted),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (see `field`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 503, description = "`not_configured`: no Slack transport (set SLACK_BOT_TOKEN, or SLACK_TRANSPORT=dev); nothing was stored. `service_unavailable`: the database is unavailable (retry after `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/messages")]
async fn submit(state: web::Data<AppState>, principal: Principal, req: HttpRequest, body: Json<PostMessage>) -> Reply {
    principal.require(POST)?;
    let body = body.into_inner();
    let idem = Idempotency::of(&req, &principal, &body)?;
    let actor = principal.actor();
    let (message, replayed) = state.slack.submit(body, Idempotency::key(&idem), &actor).await?;
    let location = format!("/api/v1/slack/messages/{}", message.id);
    let accepted = Accepted {
        id: message.id,
        status: message.status,
    };
    Ok(located(StatusCode::ACCEPTED, Some(location), replayed, accepted))
}

/// Lists messages, newest first.
#[utoipa::path(
    tag = "slack",
    params(MessageFilter),
    security(("api_key" = ["slack:read"]), ("api_key" = ["slack:post"])),
    responses(
        (status = 200, description = "One page", body = MessagePage),
        (status = 400, description = "Bad query: `limit` outside 1 to 500 or a foreign `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/messages")]
async fn list(state: web::Data<AppState>, principal: Principal, filter: web::Query<MessageFilter>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.slack.list(&filter).await?))
}

/// One message: its status, Slack `ts` and channel once posted (or captured), and the
/// last error.
#[utoipa::path(
    tag = "slack",
    params(("id" = String, Path, description = "Message id")),
    security(("api_key" = ["slack:read"]), ("api_key" = ["slack:post"])),
    responses(
        (status = 200, description = "The message", body = SlackMessage),
        (status = 404, description = "No such message", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/messages/{id}")]
async fn show(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require_any(READ)?;
    Ok(HttpResponse::Ok().json(state.slack.get(&id).await?))
}

/// Changes a message (for instance from `error` to `success` once resolved): a queued
/// one is sent with the changes, a posted one is updated in Slack, a captured one in the
/// dev sink.
#[utoipa::path(
    tag = "slack",
    params(("id" = String, Path, description = "Message id")),
    request_body = MessagePatch,
    security(("api_key" = ["slack:post"])),
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The message failed, or was delivered through another transport than this gateway's (`invalid_state`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (see `field`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 503, description = "`not_configured`: no Slack transport (set SLACK_BOT_TOKEN, or SLACK_TRANSPORT=dev); nothing was stored. `service_unavailable`: the database is unavailable (retry after `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/messages/{id}")]
async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: Json<MessagePatch>,
) -> Reply {
    principal.require(POST)?;
    Ok(HttpResponse::Accepted().json(state.slack.update(&id, body.into_inner(), &principal.actor()).await?))
}

/// The Block Kit JSON a message would be posted as, without sending it (paste the
/// `attachments` into Block Kit Builder).
#[utoipa::path(
    tag = "slack",
    request_body = PostMessage,
    security(("api_key" = ["slack:post"])),
    responses(
        (status = 200, description = "The message as Slack receives it", body = Rendered),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (see `field`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("/preview")]
async fn preview(state: web::Data<AppState>, principal: Principal, body: Json<PostMessage>) -> Reply {
    principal.require(POST)?;
    Ok(HttpResponse::Ok().json(state.slack.preview(&body)?))
}

/// Registers the Slack routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(submit)
        .service(list)
        .service(show)
        .service(update)
        .service(preview);
}
