//! The bridge: claims the events waiting in the audit trail's outbox, and for every
//! event a rule or webhook wants queues one delivery (once per target and event, on
//! whichever replica claimed it); runs those deliveries; and sends licence expiry
//! reminders.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use license_core::LicenseService;
use license_core::model::{LicenseFilter, LicenseStatus};
use mailer::MailService;
use mailer::model::{SendEmail, TemplateBody, TemplateRef};
use mailer::transport::MailMode;
use ring::hmac;
use serde_json::{Value, json};
use shared_db::events::{self, Event};
use shared_db::idempotency::{Key, Owner};
use shared_db::jobs::{self, Job, NewJob};
use shared_db::schema::events as events_table;
use shared_db::sealing::Sealer;
use shared_db::worker::{JobError, JobHandler};
use shared_db::{DbConn, DbError, DbPool, with_conn};
use slack_notify::SlackService;
use slack_notify::layout::Level;
use slack_notify::model::PostMessage;
use slack_notify::transport::SlackMode;

use crate::model::*;
use crate::net;
use crate::schema::{bridge_marks, bridge_rules, webhook_deliveries, webhooks};

/// Rule deliveries.
pub const RULE_QUEUE: &str = "bridge.rule";
/// Webhook deliveries.
pub const WEBHOOK_QUEUE: &str = "bridge.webhook";
/// The built-in reminder template's name (store one with this name to change it).
pub const REMINDER_TEMPLATE: &str = "license-expiry-reminder";
/// Events claimed per dispatch transaction.
const DISPATCH_BATCH: i64 = 200;
/// About a day of retries with the worker's backoff (2 s doubling to 15 minutes).
const WEBHOOK_ATTEMPTS: i32 = 100;
const SEALING_PURPOSE: &[u8] = b"webhook secret";
/// The owner of the bridge's idempotency keys (rule deliveries, reminders): a namespace
/// no API key can write, so no caller can replay or block them.
static BRIDGE: Owner = Owner::System("bridge");
/// Why rules and reminders skip Slack, and what to set.
const SLACK_UNCONFIGURED: &str = "Slack is not configured: set SLACK_BOT_TOKEN (or SLACK_TRANSPORT=dev)";
/// Why rules and reminders skip email, and what to set.
const EMAIL_UNCONFIGURED: &str =
    "email is not configured: set SES_SENDER_EMAIL and AWS_SES_REGION (or MAIL_TRANSPORT=dev)";

/// What the bridge refuses or fails with.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A field is unacceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No such rule or webhook.
    #[error("no {0} has that id")]
    NotFound(&'static str),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for BridgeError {
    fn from(e: diesel::result::Error) -> Self {
        BridgeError::Db(e.into())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> BridgeError {
    BridgeError::Invalid {
        field,
        message: message.into(),
    }
}

fn corrupt(e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Db(DbError::Corrupt(e.to_string()))
}

/// How the bridge behaves.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// Days before expiry at which owners are reminded (empty: no reminders).
    pub reminder_days: Vec<i64>,
    /// Where reminder warnings are posted (none: no Slack reminders).
    pub reminder_channel: Option<String>,
    /// Let webhooks target loopback and private addresses.
    pub allow_internal_webhooks: bool,
    /// How long one webhook delivery may take, from connecting to the last byte of
    /// the receiver's answer (15 s).
    pub webhook_timeout: Duration,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        Self {
            reminder_days: vec![30, 7, 1],
            reminder_channel: None,
            allow_internal_webhooks: false,
            webhook_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = bridge_rules, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
struct RuleRow {
    id: String,
    name: String,
    event_type: String,
    filter: String,
    actions: String,
    enabled: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl RuleRow {
    fn into_rule(self) -> Result<Rule, BridgeError> {
        Ok(Rule {
            filter: serde_json::from_str(&self.filter).map_err(corrupt)?,
            actions: serde_json::from_str(&self.actions).map_err(corrupt)?,
            id: self.id,
            name: self.name,
            event_type: self.event_type,
            enabled: self.enabled,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhooks, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_null = true)]
struct WebhookRow {
    id: String,
    url: String,
    event_types: String,
    description: Option<String>,
    secret_sealed: String,
    enabled: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl WebhookRow {
    fn types(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }

    fn into_webhook(self) -> Webhook {
        Webhook {
            event_types: self.types(),
            id: self.id,
            url: self.url,
            description: self.description,
            enabled: self.enabled,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
struct DeliveryRow {
    id: String,
    webhook_id: String,
    event_id: String,
    attempt: i32,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i64,
    delivered_at: NaiveDateTime,
}

/// Whether `pattern` (`license.issued`, `license.*`, `*`) covers `event_type`.
pub fn type_matches(pattern: &str, event_type: &str) -> bool {
    pattern == "*"
        || pattern == event_type
        || pattern
            .strip_suffix(".*")
            .is_some_and(|family| event_type.strip_prefix(family).is_some_and(|r| r.starts_with('.')))
}

fn check_type_pattern(field: &'static str, p: &str) -> Result<(), BridgeError> {
    let body = p.strip_suffix(".*").unwrap_or(p);
    let ok = p == "*"
        || (!body.is_empty()
            && body.len() <= 100
            && body
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_')));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("`{p}`: a type such as license.issued, a family such as license.*, or *"),
        ))
    }
}

/// The value at a dotted path.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// What templates see: `event` (id, type, subject, actor, occurred_at) and `data`.
fn context(e: &Event) -> Value {
    json!({
        "event": {
            "id": e.id, "type": e.event_type, "subject": e.subject, "actor": e.actor,
            "occurred_at": shared_db::time::rfc3339_micros::format(&e.occurred_at),
        },
        "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
    })
}

/// The most a rule's title, text or address may render to.
const RENDERED_LIMIT: usize = 256 * 1024;

/// Renders a rule's title, text or address (bounded in steps and size by the template
/// module) on a blocking thread, within the shared rendering slots.
async fn render(template: &str, ctx: &Value) -> Result<String, String> {
    let parts = mailer::template::Parts {
        subject: template.to_owned(),
        html: None,
        text: None,
    };
    // A background job: it waits for a rendering slot as long as it takes.
    mailer::template::Renders::shared()
        .render(parts, ctx.clone(), RENDERED_LIMIT, None)
        .await
        .map(|p| p.subject)
        .map_err(|e| e.to_string())
}

/// The bridge.
pub struct BridgeService {
    pool: DbPool,
    mail: Arc<MailService>,
    slack: Arc<SlackService>,
    licenses: LicenseService,
    sealer: Arc<Sealer>,
    settings: BridgeSettings,
    client: Client<hyper_rustls::HttpsConnector<net::GuardedConnector>, Full<Bytes>>,
}

impl BridgeService {
    /// Builds the bridge over the domain services; `secret` seals webhook secrets.
    pub fn new(
        pool: DbPool,
        mail: Arc<MailService>,
        slack: Arc<SlackService>,
        licenses: LicenseService,
        secret: &[u8],
        settings: BridgeSettings,
    ) -> Result<Self, BridgeError> {
        let sealer = Sealer::new(secret, SEALING_PURPOSE).map_err(|_| corrupt("key derivation"))?;
        let connector = net::connector(settings.allow_internal_webhooks).map_err(corrupt)?;
        Ok(Self {
            pool,
            mail,
            slack,
            licenses,
            sealer: Arc::new(sealer),
            client: Client::builder(TokioExecutor::new()).build(connector),
            settings,
        })
    }

    // ----- rules -----

    fn check_rule(&self, r: &NewRule) -> Result<(), BridgeError> {
        if r.name.trim().is_empty() || r.name.chars().count() > 200 {
            return Err(invalid("name", "1 to 200 characters"));
        }
        check_type_pattern("event_type", &r.event_type)?;
        if r.actions.slack.is_none() && r.actions.email.is_none() {
            return Err(invalid("actions", "give slack, email or both"));
        }
        // Loop guard: an action may not produce the events its rule listens to.
        let family = |f: &str| type_matches(&r.event_type, &format!("{f}.queued")) || r.event_type == "*";
        if r.actions.email.is_some() && family("email") {
            return Err(invalid(
                "event_type",
                "an email action cannot listen to email events (it would loop)",
            ));
        }
        if r.actions.slack.is_some() && family("slack") {
            return Err(invalid(
                "event_type",
                "a Slack action cannot listen to Slack events (it would loop)",
            ));
        }
        let parses = |t: &str| {
            mailer::template::check(&mailer::template::Parts {
                subject: t.to_owned(),
                html: None,
                text: None,
            })
            .map_err(|e| e.to_string())
        };
        if let Some(s) = &r.actions.slack {
            parses(&s.title).map_err(|m| invalid("actions.slack.title", m))?;
            if let Some(t) = &s.text {
                parses(t).map_err(|m| invalid("actions.slack.text", m))?;
            }
        }
        if let Some(e) = &r.actions.email {
            parses(&e.to).map_err(|m| invalid("actions.email.to", m))?;
            if !e.to.contains("{{") {
                mailer::address::Mailbox::parse(&e.to).map_err(|m| invalid("actions.email.to", m))?;
            }
            if e.template.trim().is_empty() {
                return Err(invalid("actions.email.template", "name a stored email template"));
            }
        }
        Ok(())
    }

    /// Creates a rule.
    pub async fn create_rule(&self, r: NewRule, actor: &str) -> Result<Rule, BridgeError> {
        self.check_rule(&r)?;
        let now = shared_db::now();
        let row = RuleRow {
            id: shared_db::new_id(),
            name: r.name.trim().to_owned(),
            event_type: r.event_type,
            filter: serde_json::to_string(&r.filter).map_err(corrupt)?,
            actions: serde_json::to_string(&r.actions).map_err(corrupt)?,
            enabled: r.enabled,
            created_at: now,
            updated_at: now,
        };
        self.save_rule(row, true, actor).await
    }

    async fn save_rule(&self, row: RuleRow, new: bool, actor: &str) -> Result<Rule, BridgeError> {
        let mut conn = self.pool.get().await?;
        let stored = row.clone();
        let actor = actor.to_owned();
        conn.transaction::<_, BridgeError, _>(async move |c| {
            if new {
                with_conn!(&mut *c, |c| diesel::insert_into(bridge_rules::table)
                    .values(&stored)
                    .execute(c)
                    .await)?;
            } else {
                with_conn!(&mut *c, |c| diesel::update(bridge_rules::table.find(&stored.id))
                    .set(&stored)
                    .execute(c)
                    .await)?;
            }
            events::record(
                c,
                if new { "rule.created" } else { "rule.updated" },
                &actor,
                &format!("rule:{}", stored.id),
                json!({ "name": stored.name, "event_type": stored.event_type, "enabled": stored.enabled }),
            )
            .await?;
            Ok(())
        })
        .await?;
        row.into_rule()
    }

    async fn rule_row(&self, conn: &mut DbConn, id: &str) -> Result<RuleRow, BridgeError> {
        with_conn!(conn, |c| bridge_rules::table
            .find(id)
            .select(RuleRow::as_select())
            .first(c)
            .await
            .optional())?
        .ok_or(BridgeError::NotFound("rule"))
    }

    /// One rule.
    pub async fn rule(&self, id: &str) -> Result<Rule, BridgeError> {
        let mut conn = self.pool.get().await?;
        self.rule_row(&mut conn, id).await?.into_rule()
    }

    /// Every rule, newest first.
    pub async fn rules(&self) -> Result<Vec<Rule>, BridgeError> {
        let mut conn = self.pool.get().await?;
        let mut rules = load_rules(&mut conn).await?;
        // Listed newest first, like every list of records (they are applied oldest first).
        rules.reverse();
        Ok(rules)
    }

    /// Changes a rule.
    pub async fn update_rule(&self, id: &str, patch: RulePatch, actor: &str) -> Result<Rule, BridgeError> {
        let mut conn = self.pool.get().await?;
        let current = self.rule_row(&mut conn, id).await?;
        let old = current.clone().into_rule()?;
        let merged = NewRule {
            name: patch.name.unwrap_or(old.name),
            event_type: patch.event_type.unwrap_or(old.event_type),
            filter: patch.filter.unwrap_or(old.filter),
            actions: patch.actions.unwrap_or(old.actions),
            enabled: patch.enabled.unwrap_or(old.enabled),
        };
        self.check_rule(&merged)?;
        let row = RuleRow {
            id: current.id,
            name: merged.name.trim().to_owned(),
            event_type: merged.event_type,
            filter: serde_json::to_string(&merged.filter).map_err(corrupt)?,
            actions: serde_json::to_string(&merged.actions).map_err(corrupt)?,
            enabled: merged.enabled,
            created_at: current.created_at,
            updated_at: shared_db::now(),
        };
        self.save_rule(row, false, actor).await
    }

    /// Deletes a rule (deliveries already queued still run).
    pub async fn delete_rule(&self, id: &str, actor: &str) -> Result<(), BridgeError> {
        let mut conn = self.pool.get().await?;
        let id = id.to_owned();
        let actor = actor.to_owned();
        conn.transaction::<_, BridgeError, _>(async move |c| {
            let n = with_conn!(&mut *c, |c| diesel::delete(bridge_rules::table.find(&id))
                .execute(c)
                .await)?;
            if n == 0 {
                return Err(BridgeError::NotFound("rule"));
            }
            events::record(c, "rule.deleted", &actor, &format!("rule:{id}"), json!({})).await?;
            Ok(())
        })
        .await
    }

    // ----- webhooks -----

    fn check_types(types: &[String]) -> Result<(), BridgeError> {
        if types.is_empty() || types.len() > 50 {
            return Err(invalid("event_types", "1 to 50 types or families"));
        }
        types.iter().try_for_each(|t| check_type_pattern("event_types", t))
    }

    /// Registers a webhook; the answer holds its signing secret, shown only here.
    pub async fn create_webhook(&self, w: NewWebhook, actor: &str) -> Result<CreatedWebhook, BridgeError> {
        net::check_url(&w.url, self.settings.allow_internal_webhooks).map_err(|m| invalid("url", m))?;
        Self::check_types(&w.event_types)?;
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        let secret = format!("whsec_{}", data_encoding::BASE64.encode(&raw));
        let id = shared_db::new_id();
        let now = shared_db::now();
        let row = WebhookRow {
            secret_sealed: self
                .sealer
                .seal(secret.as_bytes(), &id)
                .map_err(|_| corrupt("sealing"))?,
            id,
            url: w.url,
            event_types: serde_json::to_string(&w.event_types).map_err(corrupt)?,
            description: w.description,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        self.save_webhook(&row, true, actor).await?;
        Ok(CreatedWebhook {
            webhook: row.into_webhook(),
            secret,
        })
    }

    async fn save_webhook(&self, row: &WebhookRow, new: bool, actor: &str) -> Result<(), BridgeError> {
        let mut conn = self.pool.get().await?;
        let stored = row.clone();
        let actor = actor.to_owned();
        conn.transaction::<_, BridgeError, _>(async move |c| {
            if new {
                with_conn!(&mut *c, |c| diesel::insert_into(webhooks::table)
                    .values(&stored)
                    .execute(c)
                    .await)?;
            } else {
                with_conn!(&mut *c, |c| diesel::update(webhooks::table.find(&stored.id))
                    .set(&stored)
                    .execute(c)
                    .await)?;
            }
            events::record(
                c,
                if new { "webhook.created" } else { "webhook.updated" },
                &actor,
                &format!("webhook:{}", stored.id),
                json!({ "url": stored.url, "enabled": stored.enabled }),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn webhook_row(&self, conn: &mut DbConn, id: &str) -> Result<WebhookRow, BridgeError> {
        with_conn!(conn, |c| webhooks::table
            .find(id)
            .select(WebhookRow::as_select())
            .first(c)
            .await
            .optional())?
        .ok_or(BridgeError::NotFound("webhook"))
    }

    /// One webhook.
    pub async fn webhook(&self, id: &str) -> Result<Webhook, BridgeError> {
        let mut conn = self.pool.get().await?;
        Ok(self.webhook_row(&mut conn, id).await?.into_webhook())
    }

    /// Every webhook, newest first.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, BridgeError> {
        let mut conn = self.pool.get().await?;
        let rows: Vec<WebhookRow> = with_conn!(&mut *conn, |c| webhooks::table
            .select(WebhookRow::as_select())
            .order(webhooks::id.desc())
            .load(c)
            .await)?;
        Ok(rows.into_iter().map(WebhookRow::into_webhook).collect())
    }

    /// Changes a webhook.
    pub async fn update_webhook(&self, id: &str, patch: WebhookPatch, actor: &str) -> Result<Webhook, BridgeError> {
        let mut conn = self.pool.get().await?;
        let mut row = self.webhook_row(&mut conn, id).await?;
        if let Some(url) = patch.url {
            net::check_url(&url, self.settings.allow_internal_webhooks).map_err(|m| invalid("url", m))?;
            row.url = url;
        }
        if let Some(types) = patch.event_types {
            Self::check_types(&types)?;
            row.event_types = serde_json::to_string(&types).map_err(corrupt)?;
        }
        if patch.description.is_some() {
            row.description = patch.description;
        }
        if let Some(e) = patch.enabled {
            row.enabled = e;
        }
        row.updated_at = shared_db::now();
        self.save_webhook(&row, false, actor).await?;
        Ok(row.into_webhook())
    }

    /// Deletes a webhook and its delivery log.
    pub async fn delete_webhook(&self, id: &str, actor: &str) -> Result<(), BridgeError> {
        let mut conn = self.pool.get().await?;
        let id = id.to_owned();
        let actor = actor.to_owned();
        conn.transaction::<_, BridgeError, _>(async move |c| {
            let n = with_conn!(&mut *c, |c| diesel::delete(webhooks::table.find(&id)).execute(c).await)?;
            if n == 0 {
                return Err(BridgeError::NotFound("webhook"));
            }
            with_conn!(&mut *c, |c| diesel::delete(
                webhook_deliveries::table.filter(webhook_deliveries::webhook_id.eq(&id))
            )
            .execute(c)
            .await)?;
            events::record(c, "webhook.deleted", &actor, &format!("webhook:{id}"), json!({})).await?;
            Ok(())
        })
        .await
    }

    /// A webhook's latest delivery attempts, newest first.
    pub async fn deliveries(&self, id: &str, limit: i64) -> Result<Vec<WebhookDelivery>, BridgeError> {
        let mut conn = self.pool.get().await?;
        self.webhook_row(&mut conn, id).await?;
        let rows: Vec<DeliveryRow> = with_conn!(&mut *conn, |c| webhook_deliveries::table
            .filter(webhook_deliveries::webhook_id.eq(id))
            .order(webhook_deliveries::id.desc())
            .limit(limit.clamp(1, 500))
            .select(DeliveryRow::as_select())
            .load(c)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|r| WebhookDelivery {
                id: r.id,
                event_id: r.event_id,
                attempt: r.attempt,
                status_code: r.status_code,
                error: r.error,
                duration_ms: r.duration_ms,
                delivered_at: r.delivered_at.and_utc(),
            })
            .collect())
    }

    // ----- dispatch -----

    /// Queues one delivery per matching rule and webhook for every event waiting in
    /// the outbox (see `shared_db::events`), each at most once, and marks the events
    /// dispatched in the same transaction. Returns how many it queued. Safe to run from
    /// every replica at once: each claims different events.
    pub async fn dispatch(&self) -> Result<usize, BridgeError> {
        let mut conn = self.pool.get().await?;
        if !events::any_undispatched(&mut conn).await? {
            return Ok(0);
        }
        let mut queued = 0;
        loop {
            events::prefer_read_committed(&mut conn).await?;
            let round = conn
                .transaction::<_, BridgeError, _>(async move |c| {
                    let batch = events::claim_undispatched(c, DISPATCH_BATCH).await?;
                    if batch.is_empty() {
                        return Ok((0, 0));
                    }
                    // Rules and webhooks as they are now, for each batch: a long backlog
                    // must not be bridged with the ones of when it started (a rule added
                    // or turned off since, a webhook removed).
                    let rules: Vec<Rule> = load_rules(c).await?.into_iter().filter(|r| r.enabled).collect();
                    let hooks: Vec<WebhookRow> = with_conn!(&mut *c, |c| webhooks::table
                        .filter(webhooks::enabled.eq(true))
                        .select(WebhookRow::as_select())
                        .load(c)
                        .await)?;
                    let mut added = 0;
                    for (mark, queue, target, event) in deliveries_wanted(&rules, &hooks, &batch) {
                        if !set_mark(c, &mark).await? {
                            continue; // queued before (by a replica of an older version)
                        }
                        let job = NewJob::new(queue, &json!({ "target": target, "event_id": event }))?
                            .max_attempts(if queue == WEBHOOK_QUEUE { WEBHOOK_ATTEMPTS } else { 12 });
                        jobs::enqueue(c, job).await?;
                        added += 1;
                    }
                    let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
                    events::mark_dispatched(c, &ids).await?;
                    Ok((batch.len(), added))
                })
                .await;
            match round {
                Ok((claimed, added)) => {
                    queued += added;
                    if i64::try_from(claimed).unwrap_or(0) < DISPATCH_BATCH {
                        break;
                    }
                }
                // Another replica holds what this round needed: its events are still
                // waiting, and the next run takes them.
                Err(BridgeError::Db(e)) if e.is_lock_conflict() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(queued)
    }

    async fn event(&self, conn: &mut DbConn, id: &str) -> Result<Option<Event>, BridgeError> {
        Ok(with_conn!(conn, |c| events_table::table
            .find(id)
            .select(Event::as_select())
            .first(c)
            .await
            .optional())?)
    }

    /// Runs one rule for one event (the `bridge.rule` job). The Slack message and email
    /// carry the idempotency key `bridge:<rule>:<event>`, so a rerun sends nothing twice.
    async fn run_rule(&self, job: &Job) -> Result<(), JobError> {
        let (rule_id, event_id) = targets(job)?;
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let rule = match self.rule_row(&mut conn, &rule_id).await {
            Ok(r) => r.into_rule().map_err(|e| JobError::Fatal(e.to_string()))?,
            Err(BridgeError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(retry(e)),
        };
        let Some(event) = self.event(&mut conn, &event_id).await.map_err(retry)? else {
            return Err(JobError::Fatal(format!("event {event_id} is gone")));
        };
        drop(conn);
        match self.apply(&rule, &event).await {
            Ok(skipped) if skipped.is_empty() => Ok(()),
            Ok(skipped) => {
                // Not retried: the channel stays unusable until the configuration changes
                // (reported once at start-up). Recorded, like a failure, as the bridge's own
                // event (never re-bridged).
                let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
                let skipped: Vec<Value> = skipped
                    .iter()
                    .map(|(channel, reason)| json!({ "channel": channel, "reason": reason }))
                    .collect();
                events::record(
                    &mut conn,
                    "rule.skipped",
                    &format!("bridge:rule:{rule_id}"),
                    &format!("rule:{rule_id}"),
                    json!({ "event_id": event_id, "skipped": skipped }),
                )
                .await
                .map_err(|e| retry(e.into()))?;
                Ok(())
            }
            Err(Failure::Later(reason)) => Err(JobError::Retry(reason)),
            Err(Failure::Final(reason)) => {
                // Visible in the audit trail (and, being the bridge's own, never re-bridged).
                let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
                events::record(
                    &mut conn,
                    "rule.failed",
                    &format!("bridge:rule:{rule_id}"),
                    &format!("rule:{rule_id}"),
                    json!({ "event_id": event_id, "reason": reason }),
                )
                .await
                .map_err(|e| retry(e.into()))?;
                Err(JobError::Fatal(reason))
            }
        }
    }

    /// Why email from rules and reminders cannot go out on this gateway, if it cannot:
    /// what to set.
    pub fn email_unavailable(&self) -> Option<&'static str> {
        if self.mail.mode() == MailMode::NotConfigured {
            Some(EMAIL_UNCONFIGURED)
        } else if self.mail.default_sender().is_none() {
            Some("no sender for rule and reminder emails: set SES_SENDER_EMAIL")
        } else {
            None
        }
    }

    /// Why Slack messages from rules and reminders cannot go out, if they cannot.
    pub fn slack_unavailable(&self) -> Option<&'static str> {
        (self.slack.mode() == SlackMode::NotConfigured).then_some(SLACK_UNCONFIGURED)
    }

    /// The rules and reminders that skip a channel this gateway cannot use, as one line
    /// for the start-up log with what to set; none when every channel they need works.
    pub async fn skipped_channels(&self) -> Result<Option<String>, BridgeError> {
        let rules: Vec<Rule> = self.rules().await?.into_iter().filter(|r| r.enabled).collect();
        let reminders = !self.settings.reminder_days.is_empty();
        let names = |wanted: &dyn Fn(&Rule) -> bool| -> Vec<String> {
            rules
                .iter()
                .filter(|r| wanted(r))
                .map(|r| format!("\"{}\"", r.name))
                .collect()
        };
        let mut parts = Vec::new();
        if let Some(why) = self.slack_unavailable() {
            let mut what = described("rule", &names(&|r| r.actions.slack.is_some()));
            if reminders && self.settings.reminder_channel.is_some() {
                what.push("licence reminder warnings".into());
            }
            if !what.is_empty() {
                parts.push(format!("{} skip Slack ({why})", what.join(" and ")));
            }
        }
        if let Some(why) = self.email_unavailable() {
            let mut what = described("rule", &names(&|r| r.actions.email.is_some()));
            if reminders {
                what.push("licence reminder emails".into());
            }
            if !what.is_empty() {
                parts.push(format!("{} skip email ({why})", what.join(" and ")));
            }
        }
        Ok((!parts.is_empty()).then(|| parts.join("; ")))
    }

    /// A rule's actions for one event; returns the channels it skipped (not configured
    /// here) with why.
    async fn apply(&self, rule: &Rule, event: &Event) -> Result<Vec<(&'static str, &'static str)>, Failure> {
        let mut skipped = Vec::new();
        let ctx = context(event);
        let key = format!("bridge:{}:{}", rule.id, event.id);
        let actor = format!("bridge:rule:{}", rule.id);
        let hash = shared_db::idempotency::request_hash(key.as_bytes());
        let idem = Key {
            owner: &BRIDGE,
            key: &key,
            hash: &hash,
        };
        if let (Some(_), Some(why)) = (&rule.actions.slack, self.slack_unavailable()) {
            skipped.push(("slack", why));
        } else if let Some(s) = &rule.actions.slack {
            let msg = PostMessage {
                channel: s.channel.clone(),
                level: s.level,
                title: render(&s.title, &ctx).await.map_err(Failure::Final)?,
                text: match s.text.as_deref() {
                    Some(t) => Some(render(t, &ctx).await.map_err(Failure::Final)?),
                    None => None,
                },
                fields: vec![],
                links: vec![],
                source: Some(format!("rule: {}", rule.name)),
                environment: None,
                thread_of: None,
                mention: None,
            };
            match self.slack.submit(msg, Some(idem), &actor).await {
                Ok(_) => {}
                Err(slack_notify::NotifyError::NotConfigured) => skipped.push(("slack", SLACK_UNCONFIGURED)),
                Err(e @ slack_notify::NotifyError::Db(_)) => return Err(Failure::Later(format!("slack: {e}"))),
                Err(e) => return Err(Failure::Final(format!("slack: {e}"))),
            }
        }
        if let (Some(_), Some(why)) = (&rule.actions.email, self.email_unavailable()) {
            skipped.push(("email", why));
        } else if let Some(m) = &rule.actions.email {
            let req = SendEmail {
                to: vec![render(&m.to, &ctx).await.map_err(Failure::Final)?],
                template: Some(TemplateRef {
                    name: m.template.clone(),
                    variables: ctx.clone(),
                }),
                tags: BTreeMap::from([("rule".to_owned(), rule.id.clone())]),
                ..SendEmail::default()
            };
            match self.mail.submit(req, Some(idem), &actor).await {
                Ok(_) => {}
                Err(mailer::MailError::NotConfigured) => skipped.push(("email", EMAIL_UNCONFIGURED)),
                Err(e @ mailer::MailError::Db(_)) => return Err(Failure::Later(format!("email: {e}"))),
                Err(e) => return Err(Failure::Final(format!("email: {e}"))),
            }
        }
        Ok(skipped)
    }

    /// Posts one event to one webhook (the `bridge.webhook` job), signed as the
    /// Standard Webhooks specification says, and logs the attempt.
    async fn run_webhook(&self, job: &Job) -> Result<(), JobError> {
        let (hook_id, event_id) = targets(job)?;
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let hook = match self.webhook_row(&mut conn, &hook_id).await {
            Ok(h) if h.enabled => h,
            Ok(_) | Err(BridgeError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(retry(e)),
        };
        let Some(event) = self.event(&mut conn, &event_id).await.map_err(retry)? else {
            return Err(JobError::Fatal(format!("event {event_id} is gone")));
        };
        drop(conn);
        let secret = self
            .sealer
            .open(&hook.secret_sealed, &hook.id)
            .map_err(|_| JobError::Fatal("the webhook secret cannot be opened with this SECRET_KEY".into()))?;
        let body = serde_json::to_vec(&json!({
            "id": event.id, "type": event.event_type, "occurred_at": shared_db::time::rfc3339_micros::format(&event.occurred_at),
            "actor": event.actor, "subject": event.subject,
            "data": serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null),
        }))
        .map_err(|e| JobError::Fatal(e.to_string()))?;
        let timestamp = Utc::now().timestamp();
        let signature = sign(&secret, &event.id, timestamp, &body);
        // Checked again at every delivery: the row may have changed since it was
        // registered, or WEBHOOK_ALLOW_PRIVATE been turned off. The request goes to the
        // URL as checked (its parsed form), and the connector checks the address again.
        let url = match net::check_url(&hook.url, self.settings.allow_internal_webhooks) {
            Ok(url) => url,
            Err(why) => {
                let why = format!("not sent: {why}");
                self.log_attempt(&hook.id, &event.id, job.attempts, &Err(why.clone()), Duration::ZERO)
                    .await?;
                return Err(JobError::Fatal(why));
            }
        };
        let request = hyper::Request::post(url.as_str())
            .header("content-type", "application/json")
            .header("user-agent", concat!("event-bridge/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", event.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", format!("v1,{signature}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| JobError::Fatal(format!("bad request: {e}")))?;
        let started = Instant::now();
        // The whole exchange, answer body included, runs under one timer: a receiver
        // that sends its headers and then trickles the body must not hold a delivery
        // worker (and its renewed lease) for ever.
        let limit = self.settings.webhook_timeout;
        let exchange = async {
            let res = self
                .client
                .request(request)
                .await
                .map_err(|e| net::describe(&e).chars().take(500).collect::<String>())?;
            let status = res.status().as_u16();
            // Read (and bound) the answer so the connection can be reused; what it
            // says does not matter, only that it ends.
            let _ = http_body_util::Limited::new(res.into_body(), 64 * 1024).collect().await;
            Ok::<u16, String>(status)
        };
        let outcome = match tokio::time::timeout(limit, exchange).await {
            Err(_) => Err(format!("timed out after {} ms (no complete answer)", limit.as_millis())),
            Ok(outcome) => outcome,
        };
        self.log_attempt(&hook.id, &event.id, job.attempts, &outcome, started.elapsed())
            .await?;
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        match outcome {
            Ok(s) if (200..300).contains(&s) => Ok(()),
            Ok(410) => {
                // Gone: the receiver asks us to stop.
                with_conn!(&mut *conn, |c| diesel::update(webhooks::table.find(&hook.id))
                    .set(webhooks::enabled.eq(false))
                    .execute(c)
                    .await)
                .map_err(|e| retry(e.into()))?;
                events::record(
                    &mut conn,
                    "webhook.disabled",
                    "system",
                    &format!("webhook:{}", hook.id),
                    json!({"reason": "410 Gone"}),
                )
                .await
                .map_err(|e| retry(e.into()))?;
                Err(JobError::Fatal(
                    "the receiver answered 410 Gone; webhook disabled".into(),
                ))
            }
            Ok(s) => Err(JobError::Retry(format!("the receiver answered {s}"))),
            Err(e) => Err(JobError::Retry(e)),
        }
    }

    /// Adds one attempt to a webhook's delivery log: the receiver's status, or why
    /// there was none.
    async fn log_attempt(
        &self,
        hook_id: &str,
        event_id: &str,
        attempt: i32,
        outcome: &Result<u16, String>,
        took: Duration,
    ) -> Result<(), JobError> {
        let row = DeliveryRow {
            id: shared_db::new_id(),
            webhook_id: hook_id.to_owned(),
            event_id: event_id.to_owned(),
            attempt,
            status_code: outcome.as_ref().ok().map(|s| i32::from(*s)),
            error: outcome.as_ref().err().cloned(),
            duration_ms: took.as_millis() as i64,
            delivered_at: shared_db::now(),
        };
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        with_conn!(&mut *conn, |c| diesel::insert_into(webhook_deliveries::table)
            .values(&row)
            .execute(c)
            .await)
        .map_err(|e| retry(e.into()))?;
        Ok(())
    }

    // ----- reminders -----

    /// Stores the built-in reminder template unless one with its name exists.
    pub async fn ensure_reminder_template(&self) -> Result<(), BridgeError> {
        if self.mail.get_template(REMINDER_TEMPLATE).await.is_ok() {
            return Ok(());
        }
        let body = TemplateBody {
            subject: "Your {{ license.product }} licence \"{{ license.name }}\" expires in {{ days }} day{% if days != 1 %}s{% endif %}".into(),
            html: Some(
                "<p>Hello,</p><p>The <b>{{ license.product }}</b> licence <b>{{ license.name }}</b> expires on \
                 <b>{{ license.expires_at }}</b> ({{ days }} day{% if days != 1 %}s{% endif %} from now).</p>\
                 <p>Renew it to keep using it without interruption.</p>"
                    .into(),
            ),
            text: Some(
                "Hello,\n\nThe {{ license.product }} licence \"{{ license.name }}\" expires on {{ license.expires_at }} \
                 ({{ days }} day{% if days != 1 %}s{% endif %} from now).\n\nRenew it to keep using it without interruption.\n"
                    .into(),
            ),
            description: Some("Built in: licence expiry reminders (30, 7 and 1 days before)".into()),
        };
        match self.mail.put_template(REMINDER_TEMPLATE, body, "system").await {
            Ok(_) => Ok(()),
            // Another replica stored it first.
            Err(mailer::MailError::Db(e)) if e.is_unique_violation() => Ok(()),
            Err(e) => Err(corrupt(e)),
        }
    }

    /// Sends the reminders that are due and records `license.expired` for licences
    /// whose expiry has passed. Each reminder and each expiry happens once per licence
    /// and expiry date, however often this runs. Returns (reminders, expiries).
    pub async fn run_reminders(&self) -> Result<(usize, usize), BridgeError> {
        let mut days = self.settings.reminder_days.clone();
        days.sort_unstable();
        let horizon = days.last().copied().unwrap_or(0);
        // Channels this gateway cannot use are skipped (reported once at start-up); with
        // neither, reminders wait (unmarked) until one is configured.
        let by_email = self.email_unavailable().is_none();
        let slack_channel = self
            .settings
            .reminder_channel
            .as_deref()
            .filter(|_| self.slack_unavailable().is_none());
        let can_remind = by_email || slack_channel.is_some();
        let now = Utc::now();
        let (mut reminded, mut expired) = (0, 0);
        let mut cursor = None;
        loop {
            let page = self
                .licenses
                .list(&LicenseFilter {
                    // Active ones, and active ones already past their expiry (shown
                    // `expired`); suspended and revoked ones are skipped below.
                    status: None,
                    expires_before: Some(now + chrono::Duration::days(horizon.max(0)) + chrono::Duration::seconds(1)),
                    limit: Some(200),
                    cursor: cursor.take(),
                    ..LicenseFilter::default()
                })
                .await
                .map_err(corrupt)?;
            for lic in &page.items {
                if !matches!(lic.status, LicenseStatus::Active | LicenseStatus::Expired) {
                    continue;
                }
                let Some(expires) = lic.expires_at else { continue };
                let stamp = expires.timestamp();
                let mut conn = self.pool.get().await?;
                if expires <= now {
                    let mark = format!("expired:{}:{stamp}", lic.id);
                    let id = lic.id.clone();
                    let recorded = conn
                        .transaction::<_, BridgeError, _>(async move |c| {
                            if !set_mark(c, &mark).await? {
                                return Ok(false);
                            }
                            events::record(
                                c,
                                "license.expired",
                                "system",
                                &format!("license:{id}"),
                                json!({ "expires_at": shared_db::time::rfc3339_micros::format(&expires) }),
                            )
                            .await?;
                            Ok(true)
                        })
                        .await?;
                    expired += usize::from(recorded);
                    continue;
                }
                let left = (expires - now).num_seconds() as f64 / 86_400.0;
                // The tightest threshold reached: a licence found with 5 days left gets
                // the 7-day reminder only.
                let Some(&threshold) = days.iter().find(|&&d| left <= d as f64) else {
                    continue;
                };
                let mark = format!("reminder:{}:{threshold}:{stamp}", lic.id);
                let seen: Option<String> = with_conn!(&mut *conn, |c| bridge_marks::table
                    .find(&mark)
                    .select(bridge_marks::mark)
                    .first(c)
                    .await
                    .optional())?;
                if seen.is_some() || !can_remind {
                    continue;
                }
                let days_left = left.ceil() as i64;
                let to = Reach {
                    email: by_email,
                    slack_channel,
                };
                match self
                    .remind(&mut conn, lic, expires, threshold, days_left, &mark, to)
                    .await
                {
                    Ok(sent) => reminded += usize::from(sent),
                    Err(e) => {
                        // One licence's failure (a refused address, say) must not stop the
                        // others: logged, recorded, and tried again on the next pass.
                        tracing::warn!(license = %lic.id, threshold, error = %e, "licence reminder failed");
                        events::record(
                            &mut conn,
                            "license.reminder_failed",
                            "bridge:reminders",
                            &format!("license:{}", lic.id),
                            json!({ "threshold_days": threshold, "reason": e.to_string() }),
                        )
                        .await?;
                    }
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok((reminded, expired))
    }

    /// Sends one licence's reminder (by email and to a Slack channel, as `to` says) and
    /// sets its mark; `false` when another pass set the mark first.
    #[allow(clippy::too_many_arguments)]
    async fn remind(
        &self,
        conn: &mut DbConn,
        lic: &license_core::model::License,
        expires: chrono::DateTime<Utc>,
        threshold: i64,
        days_left: i64,
        mark: &str,
        to: Reach<'_>,
    ) -> Result<bool, BridgeError> {
        let vars = json!({
            "license": {
                "id": lic.id, "name": lic.name, "product": lic.product, "owner_email": lic.owner_email,
                "expires_at": expires.format("%Y-%m-%d %H:%M UTC").to_string(),
            },
            "days": days_left,
        });
        let hash = shared_db::idempotency::request_hash(mark.as_bytes());
        let idem = Key {
            owner: &BRIDGE,
            key: mark,
            hash: &hash,
        };
        let email = SendEmail {
            to: vec![lic.owner_email.clone()],
            template: Some(TemplateRef {
                name: REMINDER_TEMPLATE.into(),
                variables: vars,
            }),
            tags: BTreeMap::from([("reminder".to_owned(), format!("{threshold}d"))]),
            ..SendEmail::default()
        };
        if to.email {
            self.mail
                .submit(email, Some(idem), "bridge:reminders")
                .await
                .map_err(corrupt)?;
        }
        if let Some(channel) = to.slack_channel {
            let msg = PostMessage {
                channel: Some(channel.to_owned()),
                level: Level::Warning,
                title: format!(
                    "Licence \"{}\" expires in {days_left} day{}",
                    lic.name,
                    if days_left == 1 { "" } else { "s" }
                ),
                text: Some(format!(
                    "{} licence for {} expires {}.",
                    lic.product.as_str(),
                    lic.owner_email,
                    expires.format("%Y-%m-%d %H:%M UTC")
                )),
                fields: vec![],
                links: vec![],
                source: Some("licence reminders".into()),
                environment: None,
                thread_of: None,
                mention: None,
            };
            self.slack
                .submit(msg, Some(idem), "bridge:reminders")
                .await
                .map_err(corrupt)?;
        }
        set_mark(conn, mark).await
    }
}

/// Where one reminder goes.
#[derive(Clone, Copy)]
struct Reach<'a> {
    /// To the licence owner by email.
    email: bool,
    /// To this Slack channel.
    slack_channel: Option<&'a str>,
}

/// "rule A" or "rules A, B" (the first ten, then how many more): the rules named, for
/// a log line (empty for none).
fn described(kind: &str, names: &[String]) -> Vec<String> {
    const SHOWN: usize = 10;
    match names {
        [] => Vec::new(),
        [one] => vec![format!("{kind} {one}")],
        many if many.len() <= SHOWN => vec![format!("{kind}s {}", many.join(", "))],
        many => vec![format!(
            "{kind}s {} and {} more",
            many[..SHOWN].join(", "),
            many.len() - SHOWN
        )],
    }
}

/// Why a rule could not run.
enum Failure {
    /// Try again (the database failed).
    Later(String),
    /// It cannot work (a template error, a refused message); recorded as `rule.failed`.
    Final(String),
}

/// The deliveries a batch of events asks for: (mark, queue, target, event id) per
/// matching rule and webhook.
fn deliveries_wanted(
    rules: &[Rule],
    hooks: &[WebhookRow],
    batch: &[Event],
) -> Vec<(String, &'static str, String, String)> {
    let mut wanted = Vec::new();
    for e in batch {
        // Loop guard: what the bridge itself did never triggers rules.
        let by_bridge = e.actor.as_deref().is_some_and(|a| a.starts_with("bridge"));
        let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
        for r in rules.iter().filter(|_| !by_bridge) {
            let matches = type_matches(&r.event_type, &e.event_type)
                && r.filter.iter().all(|(path, want)| at(&data, path) == Some(want));
            if matches {
                wanted.push((
                    format!("rule:{}:{}", r.id, e.id),
                    RULE_QUEUE,
                    r.id.clone(),
                    e.id.clone(),
                ));
            }
        }
        for h in hooks {
            if h.types().iter().any(|t| type_matches(t, &e.event_type)) {
                wanted.push((
                    format!("webhook:{}:{}", h.id, e.id),
                    WEBHOOK_QUEUE,
                    h.id.clone(),
                    e.id.clone(),
                ));
            }
        }
    }
    wanted
}

async fn load_rules(conn: &mut DbConn) -> Result<Vec<Rule>, BridgeError> {
    let rows: Vec<RuleRow> = with_conn!(conn, |c| bridge_rules::table
        .select(RuleRow::as_select())
        .order(bridge_rules::id.asc())
        .load(c)
        .await)?;
    rows.into_iter().map(RuleRow::into_rule).collect()
}

/// Inserts an idempotency mark; `false` when it was already there.
async fn set_mark(c: &mut DbConn, mark: &str) -> Result<bool, BridgeError> {
    let n = with_conn!(c, |c| diesel::insert_or_ignore_into(bridge_marks::table)
        .values((
            bridge_marks::mark.eq(mark),
            bridge_marks::created_at.eq(shared_db::now())
        ))
        .execute(c)
        .await)?;
    Ok(n > 0)
}

/// `v1` signature of the Standard Webhooks scheme: base64 HMAC-SHA256 over
/// `<id>.<timestamp>.<body>`, keyed by the secret after its `whsec_` prefix.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let raw = std::str::from_utf8(secret)
        .ok()
        .and_then(|s| s.strip_prefix("whsec_"))
        .and_then(|b| data_encoding::BASE64.decode(b.as_bytes()).ok())
        .unwrap_or_else(|| secret.to_vec());
    let key = hmac::Key::new(hmac::HMAC_SHA256, &raw);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{id}.{timestamp}.").as_bytes());
    ctx.update(body);
    data_encoding::BASE64.encode(ctx.sign().as_ref())
}

fn targets(job: &Job) -> Result<(String, String), JobError> {
    let p: Value = job.payload().map_err(|e| JobError::Fatal(e.to_string()))?;
    match (p["target"].as_str(), p["event_id"].as_str()) {
        (Some(t), Some(e)) => Ok((t.to_owned(), e.to_owned())),
        _ => Err(JobError::Fatal("no target or event_id".into())),
    }
}

fn retry(e: BridgeError) -> JobError {
    JobError::Retry(e.to_string())
}

/// Runs `bridge.rule` jobs.
pub struct RuleHandler(pub Arc<BridgeService>);

impl JobHandler for RuleHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.run_rule(job))
    }
}

/// Runs `bridge.webhook` jobs.
pub struct WebhookHandler(pub Arc<BridgeService>);

impl JobHandler for WebhookHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.run_webhook(job))
    }
}
