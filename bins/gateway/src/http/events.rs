//! `/api/v1/events`: the audit trail (scope `events:read`), as pages or as a live
//! Server-Sent Events tail that resumes from `Last-Event-ID`.

use std::collections::VecDeque;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared_db::events::{self, Event, EventFilter};
use shared_db::paging::Order;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Principal;
use crate::error::{ApiError, Problem, Reply};
use crate::http::AuthProblems;
use crate::state::AppState;

const SCOPE: &str = "events:read";

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Event id (sorts by time); the SSE `id`.
    pub id: String,
    /// When it happened.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub occurred_at: DateTime<Utc>,
    /// Dotted type, such as `license.revoked`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who did it: `api_key:<id>`, `license:<id>`, `cli` or `system`.
    pub actor: Option<String>,
    /// What it happened to, such as `license:<id>`.
    pub subject: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<Event> for AuditEvent {
    fn from(e: Event) -> Self {
        AuditEvent {
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
            id: e.id,
            occurred_at: e.occurred_at.and_utc(),
            event_type: e.event_type,
            actor: e.actor,
            subject: e.subject,
        }
    }
}

/// One page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Events, newest first unless `order=asc`.
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Event filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// An exact type, or a prefix ending in `*` (`license.*`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events about this subject (`license:<id>`).
    pub subject: Option<String>,
    /// Only events at or after this time: RFC 3339 (`2026-12-01T09:00:00%2B09:00`; a `+`
    /// left unencoded, which arrives as a space, is read as `+`) or a date (`2026-12-01`,
    /// midnight UTC).
    #[serde(default, deserialize_with = "since")]
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time, in the same forms as `since`.
    #[serde(default, deserialize_with = "until")]
    pub until: Option<DateTime<Utc>>,
    /// From a previous page's `next_cursor` (which keeps its page's order). The stream
    /// also takes an event id here, as it does in `Last-Event-ID`.
    pub cursor: Option<String>,
    /// Page size (1 to 500, default 100).
    pub limit: Option<i64>,
    /// `desc` (newest first, the default) or `asc`; the stream is always oldest first.
    pub order: Option<Order>,
}

fn since<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    time_param("since", d)
}

fn until<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    time_param("until", d)
}

/// A time in a query string: RFC 3339, or a date meaning its midnight UTC; the error
/// names the parameter and the forms it takes.
fn time_param<'de, D: serde::Deserializer<'de>>(name: &str, d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(raw) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    parse_time(&raw).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{name}: `{raw}` is not a date (2026-12-01) or an RFC 3339 time (2026-12-01T09:00:00Z, or \
             2026-12-01T09:00:00%2B09:00 with the + encoded)"
        ))
    })
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(date) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    // An unencoded `+` in a query string arrives as a space.
    let fixed = match raw.rsplit_once(' ') {
        Some((time, zone)) if zone.len() == 5 && zone.as_bytes()[2] == b':' => format!("{time}+{zone}"),
        _ => raw.to_owned(),
    };
    DateTime::parse_from_rfc3339(&fixed).ok().map(|t| t.with_timezone(&Utc))
}

impl EventQuery {
    fn filter(&self, order: Order, after_id: Option<String>) -> Result<EventFilter, ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::bad_request("invalid_query", "limit must be 1 to 500"));
        }
        if let Some(t) = &self.event_type {
            let ok = !t.is_empty()
                && t.len() <= 64
                && t.trim_end_matches('*')
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_');
            if !ok {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "type is a dotted name such as license.revoked, or a prefix such as license.*",
                ));
            }
        }
        Ok(EventFilter {
            event_type: self.event_type.clone(),
            subject: self.subject.clone(),
            since: self.since.map(|t| t.naive_utc()),
            until: self.until.map(|t| t.naive_utc()),
            after_id,
            order,
            limit,
        })
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
    let (order, after) = shared_db::paging::continue_from(query.cursor.as_deref(), query.order)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("cursor: {e}")).for_field("cursor"))?;
    let filter = query.filter(order, after)?;
    let mut conn = state.pool.get().await?;
    let items: Vec<AuditEvent> = events::list(&mut conn, &filter)
        .await?
        .into_iter()
        .map(AuditEvent::from)
        .collect();
    let next_cursor = (items.len() as i64 == filter.limit)
        .then(|| items.last().map(|e| shared_db::paging::encode_ordered(order, &e.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(EventPage { items, next_cursor }))
}

/// How often the tail looks for new events.
const POLL: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// How often an open tail checks that its API key is still valid: a revoked or expired
/// key's stream ends within this (and one poll).
const KEY_CHECK: Duration = Duration::from_secs(2);

/// One open tail's position and the key it was opened with.
struct Tail {
    pool: shared_db::DbPool,
    stopping: tokio_util::sync::CancellationToken,
    key_id: String,
    last: Option<String>,
    pending: VecDeque<Event>,
    quiet_since: tokio::time::Instant,
    key_checked: tokio::time::Instant,
    closed: bool,
}

impl Tail {
    /// The next frame to send, or `None` when the stream ends (after a comment saying
    /// why, once its key is revoked, expired or gone).
    async fn next_frame(&mut self, base: &EventFilter) -> Option<web::Bytes> {
        if self.closed {
            return None;
        }
        loop {
            if self.key_checked.elapsed() >= KEY_CHECK {
                self.key_checked = tokio::time::Instant::now();
                if let Some(why) = self.key_ended().await {
                    tracing::info!(api_key = %self.key_id, why, "event tail closed");
                    self.closed = true;
                    return Some(web::Bytes::from(format!(": closed: {why}\n\n")));
                }
            }
            if let Some(e) = self.pending.pop_front() {
                self.last = Some(e.id.clone());
                self.quiet_since = tokio::time::Instant::now();
                let event = AuditEvent::from(e);
                let json = serde_json::to_string(&event).unwrap_or_default();
                return Some(web::Bytes::from(format!(
                    "id: {}\nevent: {}\ndata: {json}\n\n",
                    event.id, event.event_type
                )));
            }
            if self.quiet_since.elapsed() >= KEEPALIVE {
                self.quiet_since = tokio::time::Instant::now();
                return Some(web::Bytes::from_static(b": keep-alive\n\n"));
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = self.stopping.cancelled() => {
                    self.closed = true;
                    return Some(web::Bytes::from_static(b": closed: the server is shutting down\n\n"));
                }
            }
            let mut filter = base.clone();
            filter.after_id = self.last.clone();
            filter.limit = 200;
            match self.pool.get().await {
                Ok(mut conn) => match events::list(&mut conn, &filter).await {
                    Ok(found) => self.pending.extend(found),
                    Err(e) => tracing::warn!(error = %e, "event tail: query failed; retrying"),
                },
                Err(e) => tracing::warn!(error = %e, "event tail: database unavailable; retrying"),
            }
        }
    }

    /// Why the tail's key no longer opens it, if it does not. A database that cannot be
    /// asked keeps the tail open (it cannot read events either) and is asked again.
    async fn key_ended(&self) -> Option<&'static str> {
        let mut conn = self.pool.get().await.ok()?;
        match access::find(&mut conn, &self.key_id).await {
            Ok(None) => Some("the API key no longer exists"),
            Ok(Some(row)) if row.revoked_at.is_some() => Some("the API key was revoked"),
            Ok(Some(row)) if access::is_expired(&row, shared_db::now()) => Some("the API key expired"),
            Ok(Some(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, "event tail: could not check its API key; retrying");
                None
            }
        }
    }
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
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        // A list page's cursor (oldest first) or an event id.
        .or(query
            .cursor
            .as_deref()
            .map(|c| match shared_db::paging::continue_from(Some(c), Some(Order::Asc)) {
                Ok((_, Some(id))) => id,
                _ => c.to_owned(),
            }));
    if query.order == Some(Order::Desc) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "order: the stream runs oldest first; leave order out or use asc",
        )
        .for_field("order"));
    }
    // Without a position, the tail starts after the newest event.
    let start = match resume {
        Some(id) => Some(id),
        None => {
            let mut conn = state.pool.get().await?;
            events::latest_id(&mut conn).await?
        }
    };
    let base = query.filter(Order::Asc, None)?;
    let tail = Tail {
        pool: state.pool.clone(),
        stopping: state.stopping.clone(),
        key_id: principal.key_id.clone(),
        last: start,
        pending: VecDeque::new(),
        quiet_since: tokio::time::Instant::now(),
        key_checked: tokio::time::Instant::now(),
        closed: false,
    };
    let body = futures_util::stream::unfold(tail, move |mut tail| {
        let base = base.clone();
        async move {
            let frame = tail.next_frame(&base).await?;
            Some((Ok::<_, actix_web::Error>(frame), tail))
        }
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
