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
    let licenses = LicenseService::new(db.pool.clone(), SECRET, None).unwrap();
    let bridge = Arc::new(
        BridgeService::new(
            db.pool.clone(),
            mail.clone(),
            slack.clone(),
            licenses.clone(),
            SECRET,
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
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_turn_events_into_slack_and_email_once() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        r.mail
            .put_template(
                "licence-issued",
                TemplateBody {
                    subject: "Licence for {{ data.product }}".into(),
                    html: None,
                    text: Some("Issued by {{ event.actor }}".into()),
                    description: None,
                },
                "t",
            )
            .await
            .unwrap();
        let rule = r
            .bridge
            .create_rule(
                NewRule {
                    name: "new client licences".into(),
                    event_type: "license.*".into(),
                    filter: BTreeMap::from([("product".into(), json!("client"))]),
                    actions: Actions {
                        slack: Some(SlackAction {
                            channel: Some("#sales".into()),
                            level: Level::Success,
                            title: "New {{ data.product }} licence".into(),
                            text: Some("for {{ data.owner }}".into()),
                        }),
                        email: Some(EmailAction {
                            to: "{{ data.owner }}".into(),
                            template: "licence-issued".into(),
                        }),
                    },
                    enabled: true,
                },
                "t",
            )
            .await
            .unwrap();
        assert_eq!(
            r.bridge.dispatch().await.unwrap(),
            0,
            "no rule listens to what happened so far"
        );
        record(
            &r,
            "license.issued",
            "api_key:k",
            json!({"product": "client", "owner": "ann@example.org"}),
        )
        .await;
        record(
            &r,
            "license.issued",
            "api_key:k",
            json!({"product": "platform", "owner": "bob@example.org"}),
        )
        .await;
        record(&r, "api_key.created", "api_key:k", json!({"product": "client"})).await;
        // What the bridge itself does never triggers rules.
        record(
            &r,
            "license.issued",
            "bridge:rule:x",
            json!({"product": "client", "owner": "loop@example.org"}),
        )
        .await;

        assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
        assert_eq!(r.bridge.dispatch().await.unwrap(), 0, "a rerun queues nothing again");
        r.worker.drain().await.unwrap();
        // A rerun of the rule's job sends nothing twice (idempotency keys).
        let mut conn = r.db.pool.get().await.unwrap();
        let job = shared_db::jobs::NewJob::new(
            RULE_QUEUE,
            &json!({"target": rule.id, "event_id": latest_issued(&r).await}),
        )
        .unwrap();
        shared_db::jobs::enqueue(&mut conn, job).await.unwrap();
        r.worker.drain().await.unwrap();

        let posted = r.slack.list(&MessageFilter::default()).await.unwrap().items;
        assert_eq!(posted.len(), 1, "{posted:?}");
        assert_eq!(posted[0].title, "New client licence");
        assert_eq!(posted[0].channel, "#sales");
        assert_eq!(posted[0].request.text.as_deref(), Some("for ann@example.org"));
        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0].to, vec!["ann@example.org".to_owned()]);
        assert_eq!(emails[0].subject, "Licence for client");
        assert_eq!(emails[0].tags["rule"], rule.id);
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

#[tokio::test(flavor = "multi_thread")]
async fn rules_are_checked() {
    let r = rig(TestDb::sqlite().await, internal_ok()).await;
    let base = NewRule {
        name: "x".into(),
        event_type: "license.issued".into(),
        filter: BTreeMap::new(),
        actions: Actions {
            slack: Some(SlackAction {
                channel: None,
                level: Level::Info,
                title: "t".into(),
                text: None,
            }),
            email: None,
        },
        enabled: true,
    };
    let field = |e: BridgeError| match e {
        BridgeError::Invalid { field, .. } => field,
        other => panic!("{other:?}"),
    };
    let mut looped = base.clone();
    looped.event_type = "slack.*".into();
    assert_eq!(
        field(r.bridge.create_rule(looped, "t").await.unwrap_err()),
        "event_type"
    );
    let mut all = base.clone();
    all.event_type = "*".into();
    assert_eq!(field(r.bridge.create_rule(all, "t").await.unwrap_err()), "event_type");
    let mut bad_type = base.clone();
    bad_type.event_type = "License Issued".into();
    assert_eq!(
        field(r.bridge.create_rule(bad_type, "t").await.unwrap_err()),
        "event_type"
    );
    let mut nothing = base.clone();
    nothing.actions = Actions::default();
    assert_eq!(field(r.bridge.create_rule(nothing, "t").await.unwrap_err()), "actions");
    let mut broken = base.clone();
    broken.actions.slack.as_mut().unwrap().title = "{% if %}".into();
    assert_eq!(
        field(r.bridge.create_rule(broken, "t").await.unwrap_err()),
        "actions.slack.title"
    );
    let rule = r.bridge.create_rule(base, "t").await.unwrap();
    let off = r
        .bridge
        .update_rule(
            &rule.id,
            RulePatch {
                enabled: Some(false),
                ..RulePatch::default()
            },
            "t",
        )
        .await
        .unwrap();
    assert!(!off.enabled);
    r.bridge.delete_rule(&rule.id, "t").await.unwrap();
    assert!(matches!(r.bridge.rule(&rule.id).await, Err(BridgeError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_retried_and_logged() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .mount(&receiver)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&receiver)
            .await;
        let created = r
            .bridge
            .create_webhook(
                NewWebhook {
                    url: format!("{}/hooks/eb", receiver.uri()),
                    event_types: vec!["license.*".into()],
                    description: None,
                },
                "t",
            )
            .await
            .unwrap();
        assert!(created.secret.starts_with("whsec_"));
        r.bridge.dispatch().await.unwrap();
        record(&r, "license.revoked", "api_key:k", json!({"reason": "fraud"})).await;
        record(&r, "slack.posted", "system", json!({})).await;
        assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
        for _ in 0..50 {
            r.worker.drain().await.unwrap();
            if receiver.received_requests().await.unwrap_or_default().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got: Vec<Request> = receiver.received_requests().await.unwrap_or_default();
        assert_eq!(got.len(), 2, "one failure, one success");
        let req = &got[1];
        let header = |n: &str| req.headers.get(n).unwrap().to_str().unwrap().to_owned();
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["type"], "license.revoked");
        assert_eq!(body["data"]["reason"], "fraud");
        assert_eq!(header("webhook-id"), body["id"].as_str().unwrap());
        // Verify the signature independently: HMAC-SHA256(base64-decoded secret, id.ts.body).
        let key = data_encoding::BASE64
            .decode(created.secret.strip_prefix("whsec_").unwrap().as_bytes())
            .unwrap();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let signed = [
            header("webhook-id").as_bytes(),
            b".",
            header("webhook-timestamp").as_bytes(),
            b".",
            &req.body,
        ]
        .concat();
        let sig = header("webhook-signature");
        let tag = data_encoding::BASE64
            .decode(sig.strip_prefix("v1,").unwrap().as_bytes())
            .unwrap();
        ring::hmac::verify(&key, &signed, &tag).unwrap();
        let log = r.bridge.deliveries(&created.webhook.id, 10).await.unwrap();
        let codes: Vec<Option<i32>> = log.iter().rev().map(|d| d.status_code).collect();
        assert_eq!(codes, vec![Some(503), Some(204)]);
        assert_eq!(log.iter().rev().map(|d| d.attempt).collect::<Vec<_>>(), vec![1, 2]);

        // The secret is stored sealed, never in plain text.
        let mut conn = r.db.pool.get().await.unwrap();
        #[derive(diesel::QueryableByName)]
        struct Sealed {
            #[diesel(sql_type = diesel::sql_types::Text)]
            secret_sealed: String,
        }
        let rows: Vec<Sealed> = with_conn!(&mut *conn, |c| diesel::sql_query("SELECT secret_sealed FROM webhooks")
            .load(c)
            .await)
        .unwrap();
        assert!(
            !rows[0]
                .secret_sealed
                .contains(created.secret.trim_start_matches("whsec_"))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_webhook_targets_are_refused_unless_allowed() {
    let r = rig(TestDb::sqlite().await, BridgeSettings::default()).await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.0.0.5/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
    ] {
        let err = r
            .bridge
            .create_webhook(
                NewWebhook {
                    url: url.into(),
                    event_types: vec!["*".into()],
                    description: None,
                },
                "t",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, BridgeError::Invalid { field: "url", .. }),
            "{url}: {err:?}"
        );
    }
    // A public-looking name that resolves to loopback is refused at connect time.
    let hook = r
        .bridge
        .create_webhook(
            NewWebhook {
                url: "http://127.0.0.1.nip.io.invalid/x".into(),
                event_types: vec!["*".into()],
                description: None,
            },
            "t",
        )
        .await;
    assert!(hook.is_ok(), "names are checked when connecting, not when registering");
    assert!(!bridge::net::is_global("127.0.0.1".parse().unwrap()));
}

/// A receiver that answers its headers and then trickles (here: never sends) the body
/// cannot hold a delivery worker: the whole exchange runs under the webhook timeout,
/// the attempt fails as retryable and the delivery log says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_stalls_its_body_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = rig(
        TestDb::sqlite().await,
        BridgeSettings {
            webhook_timeout: Duration::from_millis(500),
            ..internal_ok()
        },
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stalled = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            // Headers, one byte of a promised kilobyte, then nothing.
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1024\r\n\r\nx")
                .await;
            held.push(sock);
        }
    });
    let created = r
        .bridge
        .create_webhook(
            NewWebhook {
                url: format!("http://{addr}/hook"),
                event_types: vec!["license.*".into()],
                description: None,
            },
            "t",
        )
        .await
        .unwrap();
    r.bridge.dispatch().await.unwrap();
    record(&r, "license.revoked", "api_key:k", json!({})).await;
    assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
    // Hang guard only: the old code never returns from the body read.
    let mut log = Vec::new();
    for _ in 0..100 {
        let ran = tokio::time::timeout(Duration::from_secs(60), r.worker.drain()).await;
        assert!(ran.is_ok(), "the delivery hung on a stalled answer body");
        log = r.bridge.deliveries(&created.webhook.id, 20).await.unwrap();
        if log.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Retried (a fatal error would stop at one attempt), and every attempt says why.
    assert!(log.len() >= 2, "the stalled delivery is retried: {log:?}");
    for d in &log {
        assert_eq!(d.status_code, None, "a half answer is no answer: {d:?}");
        let why = d.error.clone().unwrap_or_default();
        assert!(why.contains("timed out"), "{why}");
    }
    stalled.abort();
}

/// A webhook accepted while internal targets were allowed (or whose row was changed
/// since) is refused again when delivering: nothing reaches the receiver, and the
/// delivery log says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_target_is_refused_again_at_delivery() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&receiver)
            .await;
        let port = receiver.address().port();
        let mut hooks = Vec::new();
        for url in [
            format!("http://127.0.0.1:{port}/registered-while-allowed"),
            format!("http://localhost:{port}/an-internal-name"),
            format!("https://hooks.example.com:{port}/changed-in-the-database"),
        ] {
            let created = r
                .bridge
                .create_webhook(
                    NewWebhook {
                        url,
                        event_types: vec!["license.*".into()],
                        description: None,
                    },
                    "t",
                )
                .await
                .unwrap();
            hooks.push(created.webhook.id);
        }
        let mut conn = r.db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "UPDATE webhooks SET url = ? WHERE id = ?"
        )
        .bind::<diesel::sql_types::Text, _>(format!("http://[::ffff:127.0.0.1]:{port}/changed-in-the-database"))
        .bind::<diesel::sql_types::Text, _>(&hooks[2])
        .execute(c)
        .await)
        .unwrap();
        drop(conn);

        // The same database, now served with WEBHOOK_ALLOW_PRIVATE off.
        let strict = Arc::new(
            BridgeService::new(
                r.db.pool.clone(),
                r.mail.clone(),
                r.slack.clone(),
                r.licenses.clone(),
                SECRET,
                BridgeSettings::default(),
            )
            .unwrap(),
        );
        let worker = Worker::new(
            r.db.pool.clone(),
            WorkerOptions {
                poll_interval: Duration::from_millis(20),
                backoff: Backoff {
                    base: Duration::from_millis(1),
                    max: Duration::from_millis(1),
                    factor: 1.0,
                    jitter: false,
                },
                ..WorkerOptions::default()
            },
        )
        .register(WEBHOOK_QUEUE, WebhookHandler(strict.clone()));
        strict.dispatch().await.unwrap();
        record(&r, "license.revoked", "api_key:k", json!({})).await;
        assert_eq!(strict.dispatch().await.unwrap(), 3);
        worker.drain().await.unwrap();

        assert!(
            receiver.received_requests().await.unwrap_or_default().is_empty(),
            "a refused target received a delivery"
        );
        for (hook, why) in hooks.iter().zip([
            "127.0.0.1: loopback (127.0.0.0/8)",
            "localhost is an internal name",
            "::ffff:127.0.0.1 (IPv4-mapped) carries 127.0.0.1: loopback (127.0.0.0/8)",
        ]) {
            let log = strict.deliveries(hook, 10).await.unwrap();
            assert!(!log.is_empty(), "{why}: no attempt logged");
            for attempt in &log {
                assert_eq!(attempt.status_code, None);
                let error = attempt.error.as_deref().unwrap_or_default();
                assert!(error.contains("refused target") && error.contains(why), "{error}");
            }
        }
    }
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

/// An event whose transaction stays open for 20 s is dispatched once it commits, exactly
/// once, although dispatch ran meanwhile (and, on MariaDB, bridged later events first).
async fn late_commit(db: TestDb) {
    let r = rig(db, internal_ok()).await;
    announce_issued(&r).await;
    r.bridge.dispatch().await.unwrap();
    // SQLite has one writer at a time: while the transaction is open nothing else commits.
    let others_commit = r.db.backend() == shared_db::Backend::Mysql;
    let (bridge, db) = (&r.bridge, &r.db);
    let mut held = r.db.pool.get().await.unwrap();
    let late = held
        .transaction::<_, shared_db::DbError, _>(async |c| {
            let late = events::append(
                c,
                events::NewEvent {
                    event_type: "license.issued",
                    actor: Some("api_key:k"),
                    subject: Some("license:late"),
                    data: json!({}),
                },
            )
            .await?;
            assert_eq!(bridge.dispatch().await.unwrap(), 0, "not committed yet");
            tokio::time::sleep(Duration::from_secs(20)).await;
            if others_commit {
                let mut conn = db.pool.get().await.unwrap();
                events::record(&mut conn, "license.issued", "api_key:k", "license:later", json!({}))
                    .await
                    .unwrap();
                assert_eq!(bridge.dispatch().await.unwrap(), 1, "the later event");
            }
            assert_eq!(bridge.dispatch().await.unwrap(), 0, "still not committed");
            Ok(late)
        })
        .await
        .unwrap();
    drop(held);
    assert_eq!(
        r.bridge.dispatch().await.unwrap(),
        1,
        "{}: the late event, once committed",
        r.db.backend()
    );
    assert_eq!(r.bridge.dispatch().await.unwrap(), 0, "and only once");
    assert_eq!(jobs_for(&r, &late.id).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_committed_late_is_dispatched_exactly_once() {
    futures_util::future::join_all(TestDb::each().await.into_iter().map(late_commit)).await;
}

/// An event written by a replica whose clock lags (its time and UUIDv7 id a minute
/// behind), after later events were bridged, is dispatched all the same.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_from_a_lagging_clock_is_dispatched() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        announce_issued(&r).await;
        r.bridge.dispatch().await.unwrap();
        record(&r, "license.issued", "api_key:k", json!({})).await;
        assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
        let behind = chrono::Utc::now() - chrono::Duration::minutes(1);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            behind.timestamp() as u64,
            behind.timestamp_subsec_nanos(),
        );
        let lagging = events::Event {
            id: uuid::Uuid::new_v7(ts).to_string(),
            occurred_at: behind.naive_utc(),
            event_type: "license.issued".into(),
            actor: Some("api_key:k".into()),
            subject: Some("license:lagging".into()),
            data: "{}".into(),
        };
        // Inserted as an older replica would: without naming the outbox column.
        let mut conn = r.db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| diesel::insert_into(shared_db::schema::events::table)
            .values(&lagging)
            .execute(c)
            .await)
        .unwrap();
        assert_eq!(r.bridge.dispatch().await.unwrap(), 1, "{}", r.db.backend());
        assert_eq!(r.bridge.dispatch().await.unwrap(), 0);
        assert_eq!(jobs_for(&r, &lagging.id).await, 1);
    }
}

/// Four replicas dispatching at once queue each delivery exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_never_dispatch_one_event_twice() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        announce_issued(&r).await;
        let replicas: Vec<Arc<BridgeService>> = (0..4)
            .map(|_| {
                Arc::new(
                    BridgeService::new(
                        r.db.pool.clone(),
                        r.mail.clone(),
                        r.slack.clone(),
                        r.licenses.clone(),
                        SECRET,
                        internal_ok(),
                    )
                    .unwrap(),
                )
            })
            .collect();
        replicas[0].dispatch().await.unwrap();
        for i in 0..300 {
            record(&r, "license.issued", "api_key:k", json!({ "n": i })).await;
        }
        let runs = replicas.iter().map(|b| {
            let b = b.clone();
            let pool = r.db.pool.clone();
            tokio::spawn(async move {
                let mut queued = 0;
                loop {
                    queued += b.dispatch().await.unwrap();
                    let mut conn = pool.get().await.unwrap();
                    if !events::any_undispatched(&mut conn).await.unwrap() {
                        return queued;
                    }
                }
            })
        });
        let queued: usize = futures_util::future::join_all(runs)
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
        assert_eq!(queued, 300, "{}", r.db.backend());
        let mut conn = r.db.pool.get().await.unwrap();
        let counts = shared_db::jobs::counts(&mut conn, RULE_QUEUE).await.unwrap();
        assert_eq!(counts, vec![("queued".to_owned(), 300)], "{}", r.db.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_reminders_and_expired_events_happen_once() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        r.bridge.ensure_reminder_template().await.unwrap();
        r.bridge.ensure_reminder_template().await.unwrap();
        let (far, _) = r.licenses.issue(issue("Far", 20), "t").await.unwrap();
        let (week, _) = r.licenses.issue(issue("Week", 5), "t").await.unwrap();
        let (day, _) = r.licenses.issue(issue("Day", 1), "t").await.unwrap();
        let (later, _) = r.licenses.issue(issue("Later", 90), "t").await.unwrap();
        let (gone, _) = r.licenses.issue(issue("Gone", 3), "t").await.unwrap();
        // `Gone` expired an hour ago.
        let mut conn = r.db.pool.get().await.unwrap();
        let past = shared_db::now() - chrono::Duration::hours(1);
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "UPDATE licenses SET expires_at = ? WHERE id = ?"
        )
        .bind::<diesel::sql_types::Timestamp, _>(past)
        .bind::<diesel::sql_types::Text, _>(&gone.id)
        .execute(c)
        .await)
        .unwrap();

        assert_eq!(r.bridge.run_reminders().await.unwrap(), (3, 1));
        assert_eq!(
            r.bridge.run_reminders().await.unwrap(),
            (0, 0),
            "running it twice sends nothing twice"
        );

        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        let mut to: Vec<(String, String)> = emails
            .iter()
            .map(|e| (e.to[0].clone(), e.tags["reminder"].clone()))
            .collect();
        to.sort();
        assert_eq!(
            to,
            [
                ("day@example.org".to_owned(), "1d".to_owned()),
                ("far@example.org".to_owned(), "30d".to_owned()),
                ("week@example.org".to_owned(), "7d".to_owned()),
            ]
        );
        let week_mail = emails.iter().find(|e| e.to[0] == "week@example.org").unwrap();
        assert_eq!(week_mail.subject, "Your client licence \"Week\" expires in 5 days");
        let posts = r.slack.list(&MessageFilter::default()).await.unwrap().items;
        assert_eq!(posts.len(), 3);
        assert!(
            posts
                .iter()
                .all(|p| p.channel == "#licences" && p.level == Level::Warning)
        );
        let trail = events::for_subject(&mut conn, &format!("license:{}", gone.id))
            .await
            .unwrap();
        assert_eq!(trail.iter().filter(|e| e.event_type == "license.expired").count(), 1);
        let _ = (far, week, day, later);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_that_cannot_render_is_recorded_as_failed() {
    let r = rig(TestDb::sqlite().await, internal_ok()).await;
    let rule = r
        .bridge
        .create_rule(
            NewRule {
                name: "needs a field the event lacks".into(),
                event_type: "license.suspended".into(),
                filter: BTreeMap::new(),
                actions: Actions {
                    slack: Some(SlackAction {
                        channel: None,
                        level: Level::Warning,
                        title: "Suspended: {{ data.missing }}".into(),
                        text: None,
                    }),
                    email: None,
                },
                enabled: true,
            },
            "t",
        )
        .await
        .unwrap();
    r.bridge.dispatch().await.unwrap();
    record(&r, "license.suspended", "api_key:k", json!({})).await;
    assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
    r.worker.drain().await.unwrap();
    let mut conn = r.db.pool.get().await.unwrap();
    let trail = events::for_subject(&mut conn, &format!("rule:{}", rule.id))
        .await
        .unwrap();
    let failed = trail.iter().find(|e| e.event_type == "rule.failed").unwrap();
    assert!(failed.data.contains("data.missing"), "{}", failed.data);
    assert!(r.slack.list(&MessageFilter::default()).await.unwrap().items.is_empty());
}

/// A reminder's idempotency key is predictable (`reminder:<licence>:<days>:<expiry>`):
/// an API key that uses it first, with the same request hash or another, must neither
/// take the reminder's place nor block it.
#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_cannot_block_a_reminder() {
    use shared_db::idempotency::{self, Key, Owner};
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        r.bridge.ensure_reminder_template().await.unwrap();
        let (week, _) = r.licenses.issue(issue("Week", 5), "t").await.unwrap();
        let mark = format!("reminder:{}:7:{}", week.id, week.expires_at.unwrap().timestamp());
        let hash = idempotency::request_hash(mark.as_bytes());
        let attacker = Owner::ApiKey("attacker".into());
        let planted = mailer::model::SendEmail {
            to: vec!["attacker@example.net".into()],
            subject: Some("not a reminder".into()),
            text: Some("x".into()),
            ..mailer::model::SendEmail::default()
        };
        let key = |hash| {
            Some(Key {
                owner: &attacker,
                key: &mark,
                hash,
            })
        };
        r.mail.submit(planted, key(&hash), "api_key:attacker").await.unwrap();
        let post = slack_notify::model::PostMessage {
            channel: Some("#licences".into()),
            level: Level::Info,
            title: "not a reminder".into(),
            text: None,
            fields: vec![],
            links: vec![],
            source: None,
            environment: None,
            thread_of: None,
            mention: None,
        };
        r.slack
            .submit(post, key("another hash"), "api_key:attacker")
            .await
            .unwrap();

        assert_eq!(r.bridge.run_reminders().await.unwrap(), (1, 0));
        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        let reminder = emails
            .iter()
            .find(|e| e.to[0] == "week@example.org")
            .expect("the owner's reminder");
        assert_eq!(reminder.tags["reminder"], "7d");
        let posts = r.slack.list(&MessageFilter::default()).await.unwrap().items;
        assert!(
            posts.iter().any(|p| p.title.contains("\"Week\" expires in 5 days")),
            "{posts:?}"
        );
    }
}

/// One licence whose reminder cannot be sent (an address the mailer refuses, as old
/// data in the shared database may hold) is logged and recorded; the others still go.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_licence_does_not_stop_the_reminder_pass() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        r.bridge.ensure_reminder_template().await.unwrap();
        let (bad, _) = r.licenses.issue(issue("Bad", 5), "t").await.unwrap();
        let (good, _) = r.licenses.issue(issue("Good", 5), "t").await.unwrap();
        let (also, _) = r.licenses.issue(issue("Also", 1), "t").await.unwrap();
        let mut conn = r.db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "UPDATE licenses SET owner_email = 'not an address' WHERE id = ?"
        )
        .bind::<diesel::sql_types::Text, _>(&bad.id)
        .execute(c)
        .await)
        .unwrap();

        assert_eq!(r.bridge.run_reminders().await.unwrap(), (2, 0));
        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        let mut to: Vec<&str> = emails.iter().map(|e| e.to[0].as_str()).collect();
        to.sort();
        assert_eq!(to, ["also@example.org", "good@example.org"]);
        let trail = events::for_subject(&mut conn, &format!("license:{}", bad.id))
            .await
            .unwrap();
        let failed = trail
            .iter()
            .find(|e| e.event_type == "license.reminder_failed")
            .expect("the failure is recorded");
        assert!(failed.data.contains("not an address"), "{}", failed.data);
        // The next pass tries the failed one again and sends nothing twice.
        assert_eq!(r.bridge.run_reminders().await.unwrap(), (0, 0));
        let _ = (good, also);
    }
}

/// A rule title with nested `range(100000)` × `range(2000)` loops stops at the
/// rendering bound and is recorded as `rule.failed` with a clear reason, rather than
/// holding a worker for seconds or minutes. (The timeout only guards against a hang.)
#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_rule_template_is_recorded_as_failed() {
    let r = rig(TestDb::sqlite().await, internal_ok()).await;
    let mut rules = Vec::new();
    for (name, title, text) in [
        (
            "loops",
            "{% for i in range(100000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}Suspended",
            None,
        ),
        ("bomb", "Suspended", Some(r#"{{ "x" * 20000000 }}"#)),
    ] {
        let rule = r
            .bridge
            .create_rule(
                NewRule {
                    name: name.into(),
                    event_type: "license.suspended".into(),
                    filter: BTreeMap::new(),
                    actions: Actions {
                        slack: Some(SlackAction {
                            channel: None,
                            level: Level::Warning,
                            title: title.into(),
                            text: text.map(Into::into),
                        }),
                        email: None,
                    },
                    enabled: true,
                },
                "t",
            )
            .await
            .unwrap();
        rules.push(rule);
    }
    r.bridge.dispatch().await.unwrap();
    record(&r, "license.suspended", "api_key:k", json!({})).await;
    assert_eq!(r.bridge.dispatch().await.unwrap(), 2);
    tokio::time::timeout(Duration::from_secs(300), r.worker.drain())
        .await
        .expect("rule rendering hung")
        .unwrap();
    let mut conn = r.db.pool.get().await.unwrap();
    for (rule, bound) in rules.iter().zip(["steps", "bytes"]) {
        let trail = events::for_subject(&mut conn, &format!("rule:{}", rule.id))
            .await
            .unwrap();
        let failed = trail.iter().find(|e| e.event_type == "rule.failed").expect("recorded");
        assert!(failed.data.contains(bound), "{}: {}", rule.name, failed.data);
    }
    assert!(r.slack.list(&MessageFilter::default()).await.unwrap().items.is_empty());
}

/// A rule whose channel is not configured is skipped, recorded once per event as
/// `rule.skipped` naming what to set, never retried; its configured channel still works.
/// The start-up report names the rule and the reminders that skip the channel.
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_on_an_unconfigured_channel_is_skipped_and_reported() {
    for db in TestDb::each().await {
        let r = rig_with(db, internal_ok(), true, false).await;
        let report = r.bridge.skipped_channels().await.unwrap().unwrap();
        assert!(
            report.starts_with("licence reminder warnings skip Slack"),
            "no rule yet: {report}"
        );
        r.mail
            .put_template(
                "licence-issued",
                TemplateBody {
                    subject: "Licence for {{ data.product }}".into(),
                    html: None,
                    text: Some("Issued".into()),
                    description: None,
                },
                "t",
            )
            .await
            .unwrap();
        let rule = r
            .bridge
            .create_rule(
                NewRule {
                    name: "tell sales".into(),
                    event_type: "license.issued".into(),
                    filter: BTreeMap::new(),
                    actions: Actions {
                        slack: Some(SlackAction {
                            channel: Some("#sales".into()),
                            level: Level::Info,
                            title: "New licence".into(),
                            text: None,
                        }),
                        email: Some(EmailAction {
                            to: "sales@example.org".into(),
                            template: "licence-issued".into(),
                        }),
                    },
                    enabled: true,
                },
                "t",
            )
            .await
            .unwrap();
        let report = r.bridge.skipped_channels().await.unwrap().unwrap();
        assert!(
            report.contains("rule \"tell sales\"")
                && report.contains("licence reminder warnings")
                && report.contains("SLACK_BOT_TOKEN")
                && report.contains("SLACK_TRANSPORT=dev")
                && !report.contains("email"),
            "{report}"
        );

        record(&r, "license.issued", "api_key:k", json!({"product": "client"})).await;
        assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
        r.worker.drain().await.unwrap();
        let mut conn = r.db.pool.get().await.unwrap();
        let trail = events::for_subject(&mut conn, &format!("rule:{}", rule.id))
            .await
            .unwrap();
        let kinds: Vec<&str> = trail.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, ["rule.created", "rule.skipped"]);
        let data: Value = serde_json::from_str(&trail[1].data).unwrap();
        assert_eq!(data["skipped"][0]["channel"], "slack");
        assert!(
            data["skipped"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("SLACK_BOT_TOKEN")
        );
        let jobs = shared_db::jobs::counts(&mut conn, RULE_QUEUE).await.unwrap();
        assert!(jobs.is_empty(), "done, not retried or failed: {jobs:?}");
        assert!(r.slack.list(&MessageFilter::default()).await.unwrap().items.is_empty());
        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        assert_eq!(emails.len(), 1, "the configured channel still delivers");
    }
}

/// Reminders skip the channels that are not configured: email only here, with no
/// failure recorded; with neither channel, nothing is sent, failed or marked (the
/// reminder stays due for when one is configured).
#[tokio::test(flavor = "multi_thread")]
async fn reminders_skip_unconfigured_channels_without_failing() {
    for db in TestDb::each().await {
        let r = rig_with(db, internal_ok(), true, false).await;
        r.bridge.ensure_reminder_template().await.unwrap();
        let (week, _) = r.licenses.issue(issue("Week", 5), "t").await.unwrap();
        assert_eq!(r.bridge.run_reminders().await.unwrap(), (1, 0));
        assert_eq!(r.mail.list(&EmailFilter::default()).await.unwrap().items.len(), 1);
        assert!(r.slack.list(&MessageFilter::default()).await.unwrap().items.is_empty());
        let mut conn = r.db.pool.get().await.unwrap();
        let trail = events::for_subject(&mut conn, &format!("license:{}", week.id))
            .await
            .unwrap();
        assert!(trail.iter().all(|e| e.event_type != "license.reminder_failed"));
    }
    for db in TestDb::each().await {
        let none = rig_with(db, internal_ok(), false, false).await;
        none.bridge.ensure_reminder_template().await.unwrap();
        let (day, _) = none.licenses.issue(issue("Day", 1), "t").await.unwrap();
        assert_eq!(none.bridge.run_reminders().await.unwrap(), (0, 0));
        let report = none.bridge.skipped_channels().await.unwrap().unwrap();
        assert!(
            report.contains("licence reminder emails")
                && report.contains("licence reminder warnings")
                && report.contains("MAIL_TRANSPORT=dev"),
            "{report}"
        );
        let mut conn = none.db.pool.get().await.unwrap();
        let trail = events::for_subject(&mut conn, &format!("license:{}", day.id))
            .await
            .unwrap();
        assert!(trail.iter().all(|e| e.event_type != "license.reminder_failed"));
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let marks: N = with_conn!(&mut *conn, |c| diesel::sql_query(
            "SELECT COUNT(*) AS n FROM bridge_marks"
        )
        .get_result(c)
        .await)
        .unwrap();
        assert_eq!(marks.n, 0, "still due");
    }
}
