//! Rules, webhooks and reminders on SQLite and MariaDB: events become Slack messages,
//! emails and signed webhook deliveries exactly once per target, whatever reruns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bridge::model::*;
use bridge::{BridgeError, BridgeService, BridgeSettings, RULE_QUEUE, RuleHandler, WEBHOOK_QUEUE, WebhookHandler};
use diesel_async::RunQueryDsl;
use license_core::LicenseService;
use license_core::model::{IssueLicense, Product};
use mailer::model::{EmailFilter, TemplateBody};
use mailer::transport::DevMailbox;
use mailer::{MailService, MailSettings};
use serde_json::{Value, json};
use shared_db::testing::TestDb;
use shared_db::worker::{Backoff, Worker, WorkerOptions};
use shared_db::{events, with_conn};
use slack_notify::layout::Level;
use slack_notify::model::MessageFilter;
use slack_notify::transport::DevSink;
use slack_notify::{POST_QUEUE, PostHandler, SlackService};
use tokio::sync::Notify;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &[u8] = b"bridge-test-secret-0123456789abcdef";

mod dispatch;
mod reminders;
mod rules;
mod webhooks;

struct Rig {
    db: TestDb,
    bridge: Arc<BridgeService>,
    mail: Arc<MailService>,
    slack: Arc<SlackService>,
    licenses: LicenseService,
    worker: Worker,
}

impl Rig {
    /// Another bridge on the same database and services (a replica, or other settings).
    fn another_bridge(&self, settings: BridgeSettings) -> Arc<BridgeService> {
        bridge_service(&self.db, &self.mail, &self.slack, &self.licenses, settings)
    }
}

fn bridge_service(
    db: &TestDb,
    mail: &Arc<MailService>,
    slack: &Arc<SlackService>,
    licenses: &LicenseService,
    settings: BridgeSettings,
) -> Arc<BridgeService> {
    let keys = shared_db::KeyRing::new(SECRET, &[]);
    let service = BridgeService::new(
        db.pool.clone(),
        mail.clone(),
        slack.clone(),
        licenses.clone(),
        keys,
        settings,
    );
    Arc::new(service.unwrap())
}

async fn rig(db: TestDb, settings: BridgeSettings) -> Rig {
    rig_with(db, settings, true, true).await
}

/// A rig whose email and Slack transports are the dev ones, or not configured.
async fn rig_with(db: TestDb, settings: BridgeSettings, mail: bool, slack: bool) -> Rig {
    let wake = Arc::new(Notify::new());
    let mailer: Option<Arc<dyn mailer::transport::Mailer>> = mail.then(|| Arc::new(DevMailbox) as _);
    let notifier: Option<Arc<dyn slack_notify::transport::SlackNotifier>> =
        slack.then(|| Arc::new(DevSink::default()) as _);
    let mail = Arc::new(
        MailService::new(
            db.pool.clone(),
            mailer,
            None,
            MailSettings {
                default_from: Some("app@example.com".into()),
                ..MailSettings::default()
            },
            wake.clone(),
        )
        .unwrap(),
    );
    let slack = Arc::new(SlackService::new(
        db.pool.clone(),
        notifier,
        Some("#ops".into()),
        None,
        1000,
        wake.clone(),
    ));
    let licenses = LicenseService::new(db.pool.clone(), shared_db::KeyRing::new(SECRET, &[]), None).unwrap();
    let bridge = bridge_service(&db, &mail, &slack, &licenses, settings);
    let worker = Worker::new(
        db.pool.clone(),
        WorkerOptions {
            poll_interval: Duration::from_millis(20),
            backoff: Backoff {
                base: Duration::from_millis(10),
                max: Duration::from_millis(10),
                factor: 1.0,
                jitter: false,
            },
            ..WorkerOptions::default()
        },
    )
    .register(RULE_QUEUE, RuleHandler(bridge.clone()))
    .register(WEBHOOK_QUEUE, WebhookHandler(bridge.clone()))
    .register(POST_QUEUE, PostHandler(slack.clone()))
    .register(mailer::SEND_QUEUE, mailer::SendHandler(mail.clone()));
    Rig {
        db,
        bridge,
        mail,
        slack,
        licenses,
        worker,
    }
}

/// A page request for `limit` records.
fn page(limit: u32) -> PageQuery {
    PageQuery {
        limit: Some(limit),
        cursor: None,
    }
}

fn internal_ok() -> BridgeSettings {
    BridgeSettings {
        allow_internal_webhooks: true,
        reminder_channel: Some("#licences".into()),
        ..BridgeSettings::default()
    }
}

async fn record(r: &Rig, event_type: &str, actor: &str, data: Value) {
    let mut conn = r.db.pool.get().await.unwrap();
    events::record(&mut conn, event_type, actor, "license:x", data)
        .await
        .unwrap();
}

/// The request as the API reads it: the fields not named here take their defaults.
fn issue(name: &str, days: i64) -> IssueLicense {
    let owner_email = format!("{}@example.org", name.to_lowercase());
    IssueLicense {
        expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(days * 24 - 1)),
        ..serde_json::from_value(json!({"product": Product::Client, "name": name, "owner_email": owner_email})).unwrap()
    }
}
async fn latest_issued(r: &Rig) -> String {
    let mut conn = r.db.pool.get().await.unwrap();
    events::list(
        &mut conn,
        &events::EventFilter {
            event_type: Some("license.issued".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .find(|e| e.actor.as_deref() == Some("api_key:k") && e.data.contains("ann@"))
    .unwrap()
    .id
}
/// A Slack post at `level` to the default channel.
fn to_slack(level: Level, title: &str, text: Option<&str>) -> SlackAction {
    SlackAction {
        channel: None,
        level,
        title: title.into(),
        text: text.map(Into::into),
    }
}

/// An enabled rule on `event_type`, with no filter, posting `slack` and sending no email.
fn slack_rule(name: &str, event_type: &str, slack: SlackAction) -> NewRule {
    NewRule {
        name: name.into(),
        event_type: event_type.into(),
        filter: BTreeMap::new(),
        actions: Actions {
            slack: Some(slack),
            email: None,
        },
        enabled: true,
    }
}

/// Stores the `licence-issued` email template with this `text`.
async fn licence_issued_template(r: &Rig, text: &str) {
    let body = TemplateBody {
        subject: "Licence for {{ data.product }}".into(),
        html: None,
        text: Some(text.into()),
        description: None,
    };
    r.mail.put_template("licence-issued", body, "t").await.unwrap();
}

/// A rule posting to Slack on every `license.issued`.
async fn announce_issued(r: &Rig) -> Rule {
    let rule = slack_rule("announce", "license.issued", to_slack(Level::Info, "issued", None));
    r.bridge.create_rule(rule, "t").await.unwrap()
}

/// Jobs queued for `event_id`.
async fn jobs_for(r: &Rig, event_id: &str) -> i64 {
    use diesel::{QueryDsl, TextExpressionMethods};
    use shared_db::schema::jobs;
    let mut conn = r.db.pool.get().await.unwrap();
    let pattern = format!("%{event_id}%");
    with_conn!(&mut *conn, |c| jobs::table
        .filter(jobs::payload.like(&pattern))
        .count()
        .get_result::<i64>(c)
        .await)
    .unwrap()
}
