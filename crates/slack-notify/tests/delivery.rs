//! Delivery through the job queue to a fake Slack Web API (wiremock) reached through
//! slack-morphism's connector, on SQLite and MariaDB.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shared_db::idempotency::{Key, Owner};
use shared_db::testing::TestDb;
use shared_db::worker::{Backoff, Worker, WorkerOptions};
use slack_notify::layout::Level;
use slack_notify::model::{MessagePatch, MessageStatus, PostMessage};
use slack_notify::transport::SlackApi;
use slack_notify::{NotifyError, POST_QUEUE, PostHandler, SlackService, UPDATE_QUEUE, UpdateHandler};
use tokio::sync::Notify;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers like Slack: a fresh `ts` per message.
struct SlackOk;

impl Respond for SlackOk {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let ts = body["ts"].as_str().map(str::to_owned).unwrap_or_else(|| {
            format!(
                "1764339120.{:06}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_micros()
            )
        });
        ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C0123ABCD", "ts": ts, "message": { "ts": ts, "text": body["text"] },
        }))
    }
}

struct Rig {
    db: TestDb,
    server: MockServer,
    service: Arc<SlackService>,
    worker: Worker,
}

async fn rig(db: TestDb, per_channel_per_second: u32) -> Rig {
    let server = MockServer::start().await;
    let api = SlackApi::new("xoxb-test-token", &format!("{}/api", server.uri())).unwrap();
    let wake = Arc::new(Notify::new());
    let service = Arc::new(SlackService::new(
        db.pool.clone(),
        Some(Arc::new(api)),
        Some("#alerts".into()),
        Some("test".into()),
        per_channel_per_second,
        wake,
    ));
    let options = WorkerOptions {
        worker_id: "w".into(),
        concurrency: 8,
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(30),
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(50),
            factor: 1.0,
            jitter: false,
        },
    };
    let worker = Worker::new(db.pool.clone(), options)
        .register(POST_QUEUE, PostHandler(service.clone()))
        .register(UPDATE_QUEUE, UpdateHandler(service.clone()));
    Rig {
        db,
        server,
        service,
        worker,
    }
}

fn message(title: &str) -> PostMessage {
    PostMessage {
        channel: Some("#alerts".into()),
        level: Level::Error,
        title: title.into(),
        text: Some("disk at 97%".into()),
        fields: vec![],
        links: vec![],
        source: Some("node-exporter".into()),
        environment: None,
        thread_of: None,
        mention: None,
    }
}

async fn bodies(server: &MockServer, endpoint: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path().ends_with(endpoint))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// Answers POSTs to Slack's `endpoint` (`chat.postMessage`, ...) with `response`, at most
/// `times` times when given.
async fn mock_slack(server: &MockServer, endpoint: &str, response: impl Respond + 'static, times: Option<u64>) {
    let mock = Mock::given(method("POST"))
        .and(path(format!("/api/{endpoint}")))
        .respond_with(response);
    match times {
        Some(n) => mock.up_to_n_times(n),
        None => mock,
    }
    .mount(server)
    .await;
}

async fn rigs(per_channel_per_second: u32) -> Vec<Rig> {
    let mut out = Vec::new();
    for db in TestDb::each().await {
        out.push(rig(db, per_channel_per_second).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_the_exact_layout_with_the_bot_token() {
    for r in rigs(1000).await {
        Mock::given(method("POST"))
            .and(path("/api/chat.postMessage"))
            .and(header("authorization", "Bearer xoxb-test-token"))
            .respond_with(SlackOk)
            .expect(1)
            .mount(&r.server)
            .await;
        let (msg, replay) = r
            .service
            .submit(message("Disk almost full"), None, "test")
            .await
            .unwrap();
        assert!(!replay);
        assert_eq!(msg.status, MessageStatus::Queued);
        r.worker.drain().await.unwrap();

        let sent = bodies(&r.server, "chat.postMessage").await;
        assert_eq!(sent.len(), 1);
        let expected = r.service.preview(&message("Disk almost full")).unwrap();
        assert_eq!(sent[0]["channel"], "#alerts");
        assert_eq!(sent[0]["text"], expected.text);
        let mut attachments = sent[0]["attachments"].clone();
        let mut want = expected.attachments.clone();
        // The context line carries the message id and time: compare the rest exactly.
        attachments[0]["blocks"].as_array_mut().unwrap().pop();
        want[0]["blocks"].as_array_mut().unwrap().pop();
        assert_eq!(attachments, want, "{}", r.db.backend());
        assert!(sent[0]["attachments"][0]["blocks"].to_string().contains(&msg.id));

        let stored = r.service.get(&msg.id).await.unwrap();
        assert_eq!(stored.status, MessageStatus::Posted);
        assert_eq!(stored.slack_channel.as_deref(), Some("C0123ABCD"));
        assert!(stored.ts.is_some() && stored.posted_at.is_some() && stored.error.is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_is_waited_out_and_nothing_is_lost() {
    for r in rigs(1000).await {
        mock_slack(
            &r.server,
            "chat.postMessage",
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({ "ok": false, "error": "ratelimited" })),
            Some(1),
        )
        .await;
        mock_slack(&r.server, "chat.postMessage", SlackOk, None).await;
        let (msg, _) = r.service.submit(message("flaky"), None, "test").await.unwrap();
        r.worker.drain().await.unwrap();
        let waiting = r.service.get(&msg.id).await.unwrap();
        assert_eq!(waiting.status, MessageStatus::Queued);
        let error = waiting.error.unwrap_or_default();
        assert!(error.contains("rate limited"), "{error}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        r.worker.drain().await.unwrap();
        let done = r.service.get(&msg.id).await.unwrap();
        assert_eq!(done.status, MessageStatus::Posted, "{}", r.db.backend());
        assert_eq!(bodies(&r.server, "chat.postMessage").await.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_to_one_channel_arrive_in_order_even_across_retries() {
    for r in rigs(1000).await {
        // The first attempt of the first message fails transiently.
        mock_slack(&r.server, "chat.postMessage", ResponseTemplate::new(500), Some(1)).await;
        mock_slack(&r.server, "chat.postMessage", SlackOk, None).await;
        for i in 0..5 {
            r.service.submit(message(&format!("m{i}")), None, "test").await.unwrap();
        }
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(r.worker.run(shutdown.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while bodies(&r.server, "chat.postMessage").await.len() < 6 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        running.await.unwrap();
        let titles: Vec<String> = bodies(&r.server, "chat.postMessage")
            .await
            .iter()
            .map(|b| {
                b["attachments"][0]["blocks"][0]["text"]["text"]
                    .as_str()
                    .unwrap()
                    .replace(":x: ", "")
            })
            .collect();
        assert_eq!(titles, ["m0", "m0", "m1", "m2", "m3", "m4"], "{}", r.db.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_errors_fail_at_once_with_slacks_code() {
    for r in rigs(1000).await {
        mock_slack(
            &r.server,
            "chat.postMessage",
            ResponseTemplate::new(200).set_body_json(json!({ "ok": false, "error": "channel_not_found" })),
            None,
        )
        .await;
        let (msg, _) = r.service.submit(message("lost"), None, "test").await.unwrap();
        r.worker.drain().await.unwrap();
        let failed = r.service.get(&msg.id).await.unwrap();
        assert_eq!(failed.status, MessageStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("channel_not_found"), "{}", r.db.backend());
        assert_eq!(bodies(&r.server, "chat.postMessage").await.len(), 1, "not retried");
        assert!(matches!(
            r.service.update(&msg.id, MessagePatch::default(), "t").await,
            Err(NotifyError::Conflict { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_and_thread_replies_reach_slack() {
    for r in rigs(1000).await {
        mock_slack(&r.server, "chat.postMessage", SlackOk, None).await;
        mock_slack(&r.server, "chat.update", SlackOk, None).await;
        let (parent, _) = r.service.submit(message("DB down"), None, "test").await.unwrap();
        let mut reply = message("Failover started");
        reply.channel = None;
        reply.thread_of = Some(parent.id.clone());
        let (child, _) = r.service.submit(reply, None, "test").await.unwrap();
        assert_eq!(child.channel, "#alerts", "a reply goes to its parent's channel");
        r.worker.drain().await.unwrap();
        let parent = r.service.get(&parent.id).await.unwrap();
        let posts = bodies(&r.server, "chat.postMessage").await;
        assert_eq!(posts.len(), 2);
        assert_eq!(
            posts[1]["thread_ts"].as_str(),
            parent.ts.as_deref(),
            "{}",
            r.db.backend()
        );

        let patch = MessagePatch {
            level: Some(Level::Success),
            title: Some("DB recovered".into()),
            ..Default::default()
        };
        let accepted = r.service.update(&parent.id, patch, "test").await.unwrap();
        assert_eq!(accepted.status, MessageStatus::Posted);
        r.worker.drain().await.unwrap();
        let updates = bodies(&r.server, "chat.update").await;
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0]["ts"].as_str(), parent.ts.as_deref());
        assert_eq!(updates[0]["channel"], "C0123ABCD");
        assert_eq!(updates[0]["attachments"][0]["color"], Level::Success.colour());
        assert!(updates[0]["text"].as_str().unwrap().contains("DB recovered"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_submits_and_input_checks() {
    let r = rig(TestDb::sqlite().await, 1000).await;
    let (alice, bob) = (Owner::ApiKey("alice".into()), Owner::ApiKey("bob".into()));
    let k = |owner, key, hash| Some(Key { owner, key, hash });
    let (a, replay_a) = r
        .service
        .submit(message("once"), k(&alice, "key-1", "hash-1"), "test")
        .await
        .unwrap();
    let (b, replay_b) = r
        .service
        .submit(message("once"), k(&alice, "key-1", "hash-1"), "test")
        .await
        .unwrap();
    assert_eq!((a.id.clone(), replay_a, replay_b), (b.id, false, true));
    // Bob's key-1 is not Alice's: his own message.
    let (c, replay_c) = r
        .service
        .submit(message("other"), k(&bob, "key-1", "hash-2"), "test")
        .await
        .unwrap();
    assert!(!replay_c);
    assert_ne!(c.id, a.id);
    assert!(matches!(
        r.service
            .submit(message("other"), k(&alice, "key-1", "hash-2"), "test")
            .await,
        Err(NotifyError::Conflict { .. })
    ));
    let field = |e: Result<_, NotifyError>| match e {
        Err(NotifyError::Invalid { field, .. }) => field,
        other => panic!("{:?}", other.map(|_: (slack_notify::model::SlackMessage, bool)| ())),
    };
    let mut m = message("x");
    m.mention = Some("here".into());
    assert_eq!(
        field(r.service.submit(m, None, "t").await),
        "mention",
        "only critical mentions"
    );
    let mut m = message("x");
    m.channel = Some("has space".into());
    assert_eq!(field(r.service.submit(m, None, "t").await), "channel");
    let mut m = message("x");
    m.links = vec![slack_notify::layout::Link {
        text: "x".into(),
        url: "javascript:alert(1)".into(),
    }];
    assert_eq!(field(r.service.submit(m, None, "t").await), "links");
    let mut m = message("x");
    m.thread_of = Some("no-such-message".into());
    assert_eq!(field(r.service.submit(m, None, "t").await), "thread_of");
    let mut m = message(" ");
    m.title = " ".into();
    assert_eq!(field(r.service.submit(m, None, "t").await), "title");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_channel_is_paced_while_others_proceed() {
    let r = rig(TestDb::sqlite().await, 1).await;
    mock_slack(&r.server, "chat.postMessage", SlackOk, None).await;
    for i in 0..2 {
        r.service.submit(message(&format!("a{i}")), None, "t").await.unwrap();
    }
    let mut other = message("b0");
    other.channel = Some("#other".into());
    r.service.submit(other, None, "t").await.unwrap();
    r.worker.drain().await.unwrap();
    assert_eq!(
        bodies(&r.server, "chat.postMessage").await.len(),
        2,
        "a1 waits for #alerts' next second"
    );
    tokio::time::sleep(Duration::from_millis(1050)).await;
    r.worker.drain().await.unwrap();
    assert_eq!(bodies(&r.server, "chat.postMessage").await.len(), 3);
}

/// A service over `notifier` (none: not configured) with a worker draining it.
fn service_with(
    db: &TestDb,
    notifier: Option<Arc<dyn slack_notify::transport::SlackNotifier>>,
) -> (Arc<SlackService>, Worker) {
    let service = Arc::new(SlackService::new(
        db.pool.clone(),
        notifier,
        Some("#alerts".into()),
        None,
        1000,
        Arc::new(Notify::new()),
    ));
    let worker = Worker::new(db.pool.clone(), WorkerOptions::default())
        .register(POST_QUEUE, PostHandler(service.clone()))
        .register(UPDATE_QUEUE, UpdateHandler(service.clone()));
    (service, worker)
}

/// The dev sink never claims Slack has a message: it is `captured`, with a `dev.` ts;
/// a thread reply to it and an update of it go to the dev sink too.
#[tokio::test(flavor = "multi_thread")]
async fn the_dev_sink_captures_and_updates_and_threads_in_it() {
    for db in TestDb::each().await {
        let (svc, worker) = service_with(&db, Some(Arc::new(slack_notify::transport::DevSink::default())));
        assert_eq!(svc.mode(), slack_notify::transport::SlackMode::Dev);
        let (msg, _) = svc.submit(message("Disk almost full"), None, "t").await.unwrap();
        worker.drain().await.unwrap();
        let stored = svc.get(&msg.id).await.unwrap();
        assert_eq!(stored.status, MessageStatus::Captured, "{}", db.backend());
        assert!(
            stored.ts.as_deref().is_some_and(|ts| ts.starts_with("dev.")),
            "{stored:?}"
        );

        let mut reply = message("Still full");
        reply.thread_of = Some(msg.id.clone());
        let (reply, _) = svc.submit(reply, None, "t").await.unwrap();
        let patch = MessagePatch {
            level: Some(Level::Success),
            ..MessagePatch::default()
        };
        let changed = svc.update(&msg.id, patch, "t").await.unwrap();
        assert_eq!(changed.status, MessageStatus::Captured);
        worker.drain().await.unwrap();
        let reply = svc.get(&reply.id).await.unwrap();
        assert_eq!(reply.status, MessageStatus::Captured);
        assert_eq!(reply.thread_ts, stored.ts, "replies in the captured thread");

        let mut conn = db.pool.get().await.unwrap();
        let history = shared_db::events::for_subject(&mut conn, &format!("slack_message:{}", msg.id))
            .await
            .unwrap();
        let kinds: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            kinds,
            ["slack.queued", "slack.captured", "slack.changed", "slack.updated"]
        );
        for queue in [POST_QUEUE, UPDATE_QUEUE] {
            let left = shared_db::jobs::counts(&mut conn, queue).await.unwrap();
            assert!(left.is_empty(), "{queue}: {left:?}");
        }

        let page = svc
            .list(&slack_notify::model::MessageFilter {
                status: Some(MessageStatus::Captured),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 2);

        // Later the same database posts to Slack: what the dev sink captured never
        // reached Slack, so it can be neither updated nor replied to there.
        let api = SlackApi::new("xoxb-test-token", "http://127.0.0.1:9/api").unwrap();
        let (real, _) = service_with(&db, Some(Arc::new(api)));
        let refused = real.update(&msg.id, MessagePatch::default(), "t").await;
        assert!(
            matches!(&refused, Err(NotifyError::Conflict { code: "invalid_state", message }) if message.contains("captured")),
            "{refused:?}"
        );
        let mut reply = message("In the thread");
        reply.thread_of = Some(msg.id.clone());
        let refused = real.submit(reply, None, "t").await;
        assert!(
            matches!(&refused, Err(NotifyError::Invalid { field: "thread_of", .. })),
            "{refused:?}"
        );
    }
}

/// With no transport, posts and updates are refused before anything is stored.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_transport_nothing_is_stored() {
    for db in TestDb::each().await {
        let (svc, _) = service_with(&db, None);
        assert_eq!(svc.mode(), slack_notify::transport::SlackMode::NotConfigured);
        let owner = Owner::ApiKey("alice".into());
        let key = Some(Key {
            owner: &owner,
            key: "k1",
            hash: "h1",
        });
        let refused = svc.submit(message("Disk almost full"), key, "t").await;
        assert!(matches!(refused, Err(NotifyError::NotConfigured)), "{refused:?}");
        let refused = svc.update("no-such-id", MessagePatch::default(), "t").await;
        assert!(matches!(refused, Err(NotifyError::NotConfigured)), "{refused:?}");
        let why = NotifyError::NotConfigured.to_string();
        assert!(
            why.contains("SLACK_BOT_TOKEN") && why.contains("SLACK_TRANSPORT=dev"),
            "{why}"
        );
        let page = svc.list(&Default::default()).await.unwrap();
        assert!(page.items.is_empty());
        let mut conn = db.pool.get().await.unwrap();
        assert!(shared_db::jobs::counts(&mut conn, POST_QUEUE).await.unwrap().is_empty());
        let owner = Owner::ApiKey("alice".into());
        let key = Key {
            owner: &owner,
            key: "k1",
            hash: "h1",
        };
        let seen = shared_db::idempotency::check(&mut conn, "slack.messages", key)
            .await
            .unwrap();
        assert!(matches!(seen, shared_db::idempotency::Seen::New), "the key stays free");
    }
}
