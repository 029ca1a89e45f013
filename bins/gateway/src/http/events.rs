//! `/api/v1/events`: the audit trail (scope `events:read`), as pages or as a live
//! Server-Sent Events tail that resumes from `Last-Event-ID`. The query, the page and
//! the tail are `shared_db::events`'; this file is their HTTP.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use shared_db::events::{self, EventPage, EventQuery, QueryError, Tail};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Principal;
use crate::error::{ApiError, Problem, Reply};
use crate::http::AuthProblems;
use crate::state::AppState;

const SCOPE: &str = "events:read";

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let problem = ApiError::bad_request("invalid_query", e.message);
        match e.field {
            Some(field) => problem.for_field(field),
            None => problem,
        }
    }
}

/// Lists audit events, newest first unless `order=asc`.
#[utoipa::path(
    tag = "events",
    params(EventQuery),
    security(("api_key" = ["events:read"])),
    responses(
        (status = 200, description = "One page", body = EventPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("")]
async fn list(state: web::Data<AppState>, principal: Principal, query: web::Query<EventQuery>) -> Reply {
    principal.require(SCOPE)?;
    let filter = query.page_filter()?;
    let mut conn = state.pool.get().await?;
    let items = events::list(&mut conn, &filter).await?;
    Ok(HttpResponse::Ok().json(EventQuery::page(&filter, items)))
}

/// A live tail of events as Server-Sent Events (`id`, `event` = type, `data` = JSON);
/// reconnecting with `Last-Event-ID` resumes after that event.
///
/// The stream ends (after a comment line saying why) within a few seconds of its API key
/// being revoked or expiring, and when the server shuts down.
#[utoipa::path(
    tag = "events",
    params(EventQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    security(("api_key" = ["events:read"])),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream"),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    )
)]
#[get("/stream")]
async fn stream(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    query: web::Query<EventQuery>,
) -> Reply {
    principal.require(SCOPE)?;
    let last_event_id = req.headers().get("last-event-id").and_then(|v| v.to_str().ok());
    let start = query.tail_start(last_event_id)?;
    let filter = query.tail_filter()?;
    let (pool, key_id) = (state.pool.clone(), principal.key_id.clone());
    let check: events::KeyCheck = Box::new(move || {
        let (pool, key_id) = (pool.clone(), key_id.clone());
        Box::pin(async move {
            let why = access::ended(&pool, &key_id).await;
            if let Some(why) = why {
                tracing::info!(api_key = %key_id, why, "event tail closed");
            }
            why
        })
    });
    let tail = Tail::open(state.pool.clone(), state.stopping.clone(), filter, start, check).await?;
    let body = futures_util::StreamExt::map(tail.frames(), |frame| {
        Ok::<_, actix_web::Error>(web::Bytes::from(frame))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

/// Registers the event routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list).service(stream);
}
