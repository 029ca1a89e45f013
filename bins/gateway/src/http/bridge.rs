//! `/api/v1/rules` and `/api/v1/webhooks`: the bridge from events to Slack, email and
//! other systems.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use bridge::model::{
    CreatedWebhook, Items, NewRule, NewWebhook, PageQuery, Rule, RulePatch, Webhook, WebhookDelivery, WebhookPatch,
};
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::Json;
use crate::auth::Principal;
use crate::error::{Problem, Reply};
use crate::http::AuthProblems;
use crate::state::AppState;

const RULES: &str = "rules:admin";
const WEBHOOKS: &str = "webhooks:admin";

/// Creates a rule: when an event of `event_type` (with `filter` on its data) happens,
/// post to Slack and/or send an email template. Runs once per event, from the queue.
#[utoipa::path(
    tag = "bridge",
    request_body = NewRule,
    security(("api_key" = ["rules:admin"])),
    responses(
        (status = 201, description = "Created", body = Rule),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (see `field`), or a rule that would loop", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("")]
async fn create_rule(state: web::Data<AppState>, principal: Principal, body: Json<NewRule>) -> Reply {
    principal.require(RULES)?;
    Ok(HttpResponse::Created().json(state.bridge.create_rule(body.into_inner(), &principal.actor()).await?))
}

/// Every rule.
#[utoipa::path(
    tag = "bridge",
    params(PageQuery),
    security(("api_key" = ["rules:admin"])),
    responses(
        (status = 200, description = "Rules, newest first, a page", body = Items<Rule>),
        (status = 400, description = "Malformed query, path or body, or a refused `limit` (1 to 500) or `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("")]
async fn list_rules(state: web::Data<AppState>, principal: Principal, query: web::Query<PageQuery>) -> Reply {
    principal.require(RULES)?;
    Ok(HttpResponse::Ok().json(state.bridge.rules(&query).await?))
}

/// One rule.
#[utoipa::path(
    tag = "bridge",
    params(("id" = String, Path, description = "Rule id")),
    security(("api_key" = ["rules:admin"])),
    responses(
        (status = 200, description = "The rule", body = Rule),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{id}")]
async fn get_rule(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require(RULES)?;
    Ok(HttpResponse::Ok().json(state.bridge.rule(&id).await?))
}

/// Changes a rule (given fields replace the old ones; `enabled: false` pauses it).
#[utoipa::path(
    tag = "bridge",
    params(("id" = String, Path, description = "Rule id")),
    request_body = RulePatch,
    security(("api_key" = ["rules:admin"])),
    responses(
        (status = 200, description = "Changed", body = Rule),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[patch("/{id}")]
async fn update_rule(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: Json<RulePatch>,
) -> Reply {
    principal.require(RULES)?;
    let answer = state
        .bridge
        .update_rule(&id, body.into_inner(), &principal.actor())
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Deletes a rule.
#[utoipa::path(
    tag = "bridge",
    params(("id" = String, Path, description = "Rule id")),
    security(("api_key" = ["rules:admin"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[delete("/{id}")]
async fn delete_rule(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require(RULES)?;
    state.bridge.delete_rule(&id, &principal.actor()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers the rule routes (under `/api/v1/rules`).
pub fn configure_rules(cfg: &mut ServiceConfig) {
    cfg.service(create_rule)
        .service(list_rules)
        .service(get_rule)
        .service(update_rule)
        .service(delete_rule);
}

/// Registers a webhook. The answer holds its signing `secret`, shown only this once.
#[utoipa::path(
    tag = "bridge",
    request_body = NewWebhook,
    security(("api_key" = ["webhooks:admin"])),
    responses(
        (status = 201, description = "Created, with its secret", body = CreatedWebhook),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (an internal address, a bad type...)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[post("")]
async fn create_webhook(state: web::Data<AppState>, principal: Principal, body: Json<NewWebhook>) -> Reply {
    principal.require(WEBHOOKS)?;
    let answer = state
        .bridge
        .create_webhook(body.into_inner(), &principal.actor())
        .await?;
    Ok(HttpResponse::Created().json(answer))
}

/// Every webhook (never their secrets).
#[utoipa::path(
    tag = "bridge",
    params(PageQuery),
    security(("api_key" = ["webhooks:admin"])),
    responses(
        (status = 200, description = "Webhooks, newest first, a page", body = Items<Webhook>),
        (status = 400, description = "Malformed query, path or body, or a refused `limit` (1 to 500) or `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("")]
async fn list_webhooks(state: web::Data<AppState>, principal: Principal, query: web::Query<PageQuery>) -> Reply {
    principal.require(WEBHOOKS)?;
    Ok(HttpResponse::Ok().json(state.bridge.webhooks(&query).await?))
}

/// One webhook.
#[utoipa::path(
    tag = "bridge",
    params(("id" = String, Path, description = "Webhook id")),
    security(("api_key" = ["webhooks:admin"])),
    responses(
        (status = 200, description = "The webhook", body = Webhook),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{id}")]
async fn get_webhook(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require(WEBHOOKS)?;
    Ok(HttpResponse::Ok().json(state.bridge.webhook(&id).await?))
}

/// Changes a webhook (URL, event types, description, on/off).
#[utoipa::path(
    tag = "bridge",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = WebhookPatch,
    security(("api_key" = ["webhooks:admin"])),
    responses(
        (status = 200, description = "Changed", body = Webhook),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[patch("/{id}")]
async fn update_webhook(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: Json<WebhookPatch>,
) -> Reply {
    principal.require(WEBHOOKS)?;
    let answer = state
        .bridge
        .update_webhook(&id, body.into_inner(), &principal.actor())
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Deletes a webhook and its delivery log.
#[utoipa::path(
    tag = "bridge",
    params(("id" = String, Path, description = "Webhook id")),
    security(("api_key" = ["webhooks:admin"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[delete("/{id}")]
async fn delete_webhook(state: web::Data<AppState>, principal: Principal, id: web::Path<String>) -> Reply {
    principal.require(WEBHOOKS)?;
    state.bridge.delete_webhook(&id, &principal.actor()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A webhook's delivery attempts, newest first: status, error and duration of each.
#[utoipa::path(
    tag = "bridge",
    params(("id" = String, Path, description = "Webhook id"), PageQuery),
    security(("api_key" = ["webhooks:admin"])),
    responses(
        (status = 200, description = "Attempts, a page", body = Items<WebhookDelivery>),
        (status = 400, description = "Malformed query, path or body, or a refused `limit` (1 to 500) or `cursor` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/{id}/deliveries")]
async fn deliveries(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Reply {
    principal.require(WEBHOOKS)?;
    Ok(HttpResponse::Ok().json(state.bridge.deliveries(&id, &query).await?))
}

/// Registers the webhook routes (under `/api/v1/webhooks`).
pub fn configure_webhooks(cfg: &mut ServiceConfig) {
    cfg.service(create_webhook)
        .service(list_webhooks)
        .service(get_webhook)
        .service(update_webhook)
        .service(delete_webhook)
        .service(deliveries);
}
