//! The bridge: claims the events waiting in the audit trail's outbox, and for every
//! event a rule or webhook wants queues one delivery (once per target and event, on
//! whichever replica claimed it); runs those deliveries; and sends licence expiry
//! reminders. One file per use case; the rows come from [`crate::store`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use license_core::LicenseService;
use mailer::MailService;
use mailer::transport::MailMode;
use shared_db::idempotency::Owner;
use shared_db::paging::{self, Order, PagingError};
use shared_db::{DbPool, KeyRing};
use slack_notify::SlackService;
use slack_notify::transport::SlackMode;

use crate::model::{BridgeError, PageQuery, Rule, corrupt};
use crate::net;
use crate::store;

mod apply;
mod deliver;
mod dispatch;
mod reminders;
mod rules;
mod webhooks;

pub use deliver::sign;
pub use reminders::REMINDER_TEMPLATE;

/// Rule deliveries.
pub const RULE_QUEUE: &str = "bridge.rule";
/// Webhook deliveries.
pub const WEBHOOK_QUEUE: &str = "bridge.webhook";
/// What webhook secrets are sealed for.
const SEALING_PURPOSE: &[u8] = b"webhook secret";
/// The owner of the bridge's idempotency keys (rule deliveries, reminders): a namespace
/// no API key can write, so no caller can replay or block them.
static BRIDGE: Owner = Owner::System("bridge");
/// Why rules and reminders skip Slack, and what to set.
const SLACK_UNCONFIGURED: &str = "Slack is not configured: set SLACK_BOT_TOKEN (or SLACK_TRANSPORT=dev)";
/// Why rules and reminders skip email, and what to set.
const EMAIL_UNCONFIGURED: &str =
    "email is not configured: set SES_SENDER_EMAIL and AWS_SES_REGION (or MAIL_TRANSPORT=dev)";

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

/// The bridge.
pub struct BridgeService {
    pool: DbPool,
    mail: Arc<MailService>,
    slack: Arc<SlackService>,
    licenses: LicenseService,
    /// Seals webhook secrets under the current secret and opens them under any.
    ring: KeyRing,
    settings: BridgeSettings,
    client: Client<hyper_rustls::HttpsConnector<net::GuardedConnector>, Full<Bytes>>,
}

impl BridgeService {
    /// Builds the bridge over the domain services; `ring` seals webhook secrets (the
    /// current secret seals, any secret of the ring opens).
    pub fn new(
        pool: DbPool,
        mail: Arc<MailService>,
        slack: Arc<SlackService>,
        licenses: LicenseService,
        ring: KeyRing,
        settings: BridgeSettings,
    ) -> Result<Self, BridgeError> {
        ring.sealer(SEALING_PURPOSE).map_err(|_| corrupt("key derivation"))?;
        let connector = net::connector(settings.allow_internal_webhooks).map_err(corrupt)?;
        Ok(Self {
            pool,
            mail,
            slack,
            licenses,
            ring,
            client: Client::builder(TokioExecutor::new()).build(connector),
            settings,
        })
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
        let mut conn = self.pool.get().await?;
        let mut rules = store::load_rules(&mut conn).await?;
        drop(conn);
        // Named newest first, as they are listed.
        rules.reverse();
        let rules: Vec<Rule> = rules.into_iter().filter(|r| r.enabled).collect();
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

/// The page size and the position after which a page request (newest first) starts.
fn page_request(q: &PageQuery) -> Result<(i64, Option<String>), BridgeError> {
    let limit = paging::limit(q.limit)?;
    let (_, after) = paging::continue_from(q.cursor.as_deref(), Some(Order::Desc)).map_err(PagingError::Cursor)?;
    Ok((limit, after))
}

/// The cursor that continues after the row with id `id`.
fn cursor_after(id: &str) -> String {
    paging::encode_ordered(Order::Desc, id)
}
