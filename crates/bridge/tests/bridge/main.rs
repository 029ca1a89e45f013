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
    let bridge = Arc::new(
        BridgeService::new(
            db.pool.clone(),
            mail.clone(),
            slack.clone(),
            licenses.clone(),
            shared_db::KeyRing::new(SECRET, &[]),
            settings,
        )
        .unwrap(),
    );
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

fn issue(name: &str, days: i64) -> IssueLicense {
    IssueLicense {
        product: Product::Client,
        name: name.into(),
        owner_email: format!("{}@example.org", name.to_lowercase()),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(days * 24 - 1)),
        duration: None,
        max_machines: None,
        entitlements: vec![],
        metadata: serde_json::Map::new(),
        require_machine: false,
        heartbeat_interval_secs: None,
        heartbeat_cull: None,
        heartbeat_resurrection_secs: None,
        grace_period: None,
        expiry_strategy: None,
        expiry_basis: None,
        policy_id: None,
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
/// A rule posting to Slack on every `license.issued`.
async fn announce_issued(r: &Rig) -> Rule {
    r.bridge
        .create_rule(
            NewRule {
                name: "announce".into(),
                event_type: "license.issued".into(),
                filter: BTreeMap::new(),
                actions: Actions {
                    slack: Some(SlackAction {
                        channel: None,
                        level: Level::Info,
                        title: "issued".into(),
                        text: None,
                    }),
                    email: None,
                },
                enabled: true,
            },
            "t",
        )
        .await
        .unwrap()
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
