//! `/api/v1/overview`: the counts the web console's first page shows, which no list
//! route gives (a list pages through items; it does not count them by status). Read-only,
//! behind an API key; each part is there only when the key holds its section's scope,
//! and `needs` names the scope of each part left out.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Principal;
use crate::error::Reply;
use crate::http::AuthProblems;
use crate::state::AppState;

/// The scopes that read each section, the first being the one a refusal names.
const LICENSES: &[&str] = &["licenses:read", "licenses:admin"];
const EMAILS: &[&str] = &["emails:read", "emails:send", "emails:admin"];
const SLACK: &[&str] = &["slack:read", "slack:post"];
const RULES: &[&str] = &["rules:admin"];
const WEBHOOKS: &[&str] = &["webhooks:admin"];

/// How many hours of email activity the overview counts.
pub const EMAIL_HOURS: u32 = 24;

/// What the console's overview shows; a part the key may not read is absent and named
/// in `needs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// When these counts were read.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub generated_at: DateTime<Utc>,
    /// Licences by status (scope `licenses:read` or `licenses:admin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licenses: Option<StatusCounts>,
    /// Emails accepted in the last 24 hours (scope `emails:read`, `emails:send` or `emails:admin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<EmailActivity>,
    /// Slack messages by status (scope `slack:read` or `slack:post`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack: Option<StatusCounts>,
    /// The storage namespaces the key can read (`blobs:read:<namespace>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Jobs not yet done, by queue and state, for the queues of the sections the key
    /// reads (email, Slack, rules, webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<JobQueue>>,
    /// Each part left out (`licenses`, `emails`, `slack`, `storage`, `jobs`) and the
    /// scope that would show it.
    pub needs: BTreeMap<String, String>,
}

/// Counts by status; every status is named, zeros included.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusCounts {
    /// Status to count.
    pub by_status: BTreeMap<String, i64>,
}

/// Emails over the last 24 hours.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailActivity {
    /// The start of the first hour counted.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub since: DateTime<Utc>,
    /// Status to count, over the 24 hours (statuses with no message are left out).
    pub by_status: BTreeMap<String, i64>,
    /// Messages accepted per hour, oldest first, the current hour last.
    pub hourly: Vec<HourCount>,
}

/// The messages accepted in one hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourCount {
    /// The hour's start.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub hour: DateTime<Utc>,
    /// How many.
    pub count: i64,
}

/// The storage namespaces a key can read.
#[derive(Debug, Serialize, ToSchema)]
pub struct Storage {
    /// In configuration order.
    pub namespaces: Vec<NamespaceInfo>,
}

/// One storage namespace.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceInfo {
    /// Its name in URLs.
    pub name: String,
    /// The largest object it takes, in bytes.
    pub max_size: u64,
}

/// Jobs of one queue in one state.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobQueue {
    /// The queue (`email.send`, `slack.post`, `bridge.webhook`...).
    pub queue: String,
    /// `queued`, `waiting`, `running` or `failed`.
    pub state: String,
    /// How many.
    pub count: i64,
    /// When the oldest was enqueued.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub oldest: DateTime<Utc>,
}

/// The scopes that may see a queue's jobs: its section's.
fn queue_scopes(queue: &str) -> &'static [&'static str] {
    match queue {
        q if q.starts_with("email.") => EMAILS,
        q if q.starts_with("slack.") => SLACK,
        bridge::RULE_QUEUE => RULES,
        bridge::WEBHOOK_QUEUE => WEBHOOKS,
        _ => &["*"],
    }
}

/// The console's overview: licences by status, emails by status and per hour over the
/// last 24 hours, Slack messages by status, the storage namespaces and the jobs waiting.
///
/// Any key with a scope of one of these sections may ask; each part is there only when
/// the key holds that section's scope, and `needs` names the scope of each part left out.
#[utoipa::path(
    tag = "overview",
    security(
        ("api_key" = ["licenses:read"]),
        ("api_key" = ["licenses:admin"]),
        ("api_key" = ["emails:read"]),
        ("api_key" = ["emails:send"]),
        ("api_key" = ["emails:admin"]),
        ("api_key" = ["slack:read"]),
        ("api_key" = ["slack:post"]),
        ("api_key" = ["blobs:read"]),
        ("api_key" = ["rules:admin"]),
        ("api_key" = ["webhooks:admin"]),
    ),
    responses(
        (status = 200, description = "The overview", body = Overview),
        AuthProblems,
    )
)]
#[get("")]
async fn show(state: web::Data<AppState>, principal: Principal) -> Reply {
    let may = |scopes: &[&str]| principal.require_any(scopes).is_ok();
    let now = shared_db::now();
    let mut needs = BTreeMap::new();
    let mut need = |part: &str, scopes: &[&str]| {
        needs.insert(part.to_owned(), scopes[0].to_owned());
    };

    let licenses = if may(LICENSES) {
        let counts = state.licenses.count_by_status().await?;
        Some(StatusCounts {
            by_status: counts.into_iter().map(|(s, n)| (s.as_str().to_owned(), n)).collect(),
        })
    } else {
        need("licenses", LICENSES);
        None
    };

    let emails = if may(EMAILS) {
        let hours = state.mail.activity(now, EMAIL_HOURS).await?;
        let mut by_status = BTreeMap::new();
        let mut hourly = Vec::with_capacity(hours.len());
        for (hour, counts) in &hours {
            for (status, n) in counts {
                *by_status.entry(status.clone()).or_insert(0) += n;
            }
            hourly.push(HourCount {
                hour: hour.and_utc(),
                count: counts.iter().map(|(_, n)| n).sum(),
            });
        }
        Some(EmailActivity {
            since: hours.first().map_or(now, |(h, _)| *h).and_utc(),
            by_status,
            hourly,
        })
    } else {
        need("emails", EMAILS);
        None
    };

    let slack = if may(SLACK) {
        let mut by_status: BTreeMap<String, i64> = ["queued", "posted", "captured", "failed"]
            .into_iter()
            .map(|s| (s.to_owned(), 0))
            .collect();
        for (status, n) in state.slack.count_by_status().await? {
            *by_status.entry(status).or_insert(0) += n;
        }
        Some(StatusCounts { by_status })
    } else {
        need("slack", SLACK);
        None
    };

    let readable: Vec<NamespaceInfo> = state
        .config
        .storage
        .namespaces
        .iter()
        .filter(|n| principal.require(&format!("blobs:read:{}", n.name)).is_ok())
        .map(|n| NamespaceInfo {
            name: n.name.clone(),
            max_size: n.max_size,
        })
        .collect();
    let reads_blobs = principal.scopes.iter().any(|s| s == "*" || s.starts_with("blobs:read"));
    let storage = if !reads_blobs {
        need("storage", &["blobs:read"]);
        None
    } else {
        Some(Storage { namespaces: readable })
    };

    let jobs = if [EMAILS, SLACK, RULES, WEBHOOKS].iter().any(|s| may(s)) {
        let mut conn = state.pool.get().await?;
        let states = shared_db::jobs::queue_states(&mut conn).await?;
        Some(
            states
                .into_iter()
                .filter(|s| may(queue_scopes(&s.queue)))
                .map(|s| JobQueue {
                    queue: s.queue,
                    state: s.status,
                    count: s.count,
                    oldest: s.oldest.and_utc(),
                })
                .collect(),
        )
    } else {
        need("jobs", EMAILS);
        None
    };

    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(Overview {
            generated_at: now.and_utc(),
            licenses,
            emails,
            slack,
            storage,
            jobs,
            needs,
        }))
}

/// Registers the overview route.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(show);
}
