//! Running one rule for one event: its Slack message and email, rendered from the event.

use std::collections::BTreeMap;

use mailer::model::{SendEmail, TemplateRef};
use serde_json::{Value, json};
use shared_db::events::{self, Event};
use shared_db::idempotency::Key;
use shared_db::jobs::Job;
use shared_db::worker::JobError;
use slack_notify::model::PostMessage;

use super::{BRIDGE, BridgeService, EMAIL_UNCONFIGURED, SLACK_UNCONFIGURED};
use crate::jobs::{retry, targets};
use crate::model::{BridgeError, Rule};
use crate::store;

impl BridgeService {
    /// Runs one rule for one event (the `bridge.rule` job). The Slack message and email
    /// carry the idempotency key `bridge:<rule>:<event>`, so a rerun sends nothing twice.
    pub(crate) async fn run_rule(&self, job: &Job) -> Result<(), JobError> {
        let (rule_id, event_id) = targets(job)?;
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let rule = match store::rule(&mut conn, &rule_id).await {
            Ok(r) => r.into_rule().map_err(|e| JobError::Fatal(e.to_string()))?,
            Err(BridgeError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(retry(e)),
        };
        let Some(event) = store::event(&mut conn, &event_id).await.map_err(|e| retry(e.into()))? else {
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

/// Why a rule could not run.
enum Failure {
    /// Try again (the database failed).
    Later(String),
    /// It cannot work (a template error, a refused message); recorded as `rule.failed`.
    Final(String),
}
