//! Retention with second-long periods: old events, finished messages and webhook
//! deliveries go; a queued message, licences and keys stay; `gateway prune` prints what it
//! removed and `off` keeps a kind for ever.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cli::run;
use crate::emails::app_with;
use crate::helpers::{SECRET, TestApp, get, post_json};

/// POSTs `body` to `path` with the admin key, asserting success, and returns the answer.
async fn create(app: &TestApp, path: &str, body: Value) -> Value {
    let res = post_json(app, path, &body).await;
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// The `id` of what `create` made.
fn id(created: &Value) -> String {
    created["id"].as_str().unwrap().to_owned()
}

async fn status(app: &TestApp, path: &str) -> u16 {
    get(app, path).await.status().as_u16()
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn old_records_go_and_queued_messages_licences_and_keys_stay_on_both_backends() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let vars = [
        ("EVENTS_RETENTION", "3s"),
        ("MESSAGE_RETENTION", "3s"),
        ("WEBHOOK_DELIVERY_RETENTION", "3s"),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ("MAIL_TRANSPORT", "dev"),
        // A Slack API that refuses connections: the message stays queued, retrying.
        ("SLACK_TRANSPORT", "slack"),
        ("SLACK_BOT_TOKEN", "xoxb-retention-test"),
        ("SLACK_API_URL", "http://127.0.0.1:1"),
    ];
    for mysql in [false, true] {
        let Some(app) = app_with(&vars, mysql).await else {
            continue;
        };
        let hook_body = json!({"url": format!("{}/in", receiver.uri()), "event_types": ["license.*"]});
        let hook = id(&create(&app, "/api/v1/webhooks", hook_body).await);
        let licence_body = json!({"product": "client", "name": "kept", "owner_email": "ops@example.com"});
        let licence = create(&app, "/api/v1/licenses", licence_body).await;
        let key = licence["key"].as_str().unwrap().to_owned();
        let email_body = json!({"to": "ann@example.org", "subject": "old", "text": "bye"});
        let email = id(&create(&app, "/api/v1/emails", email_body).await);
        let slack_body = json!({"channel": "#ops", "level": "info", "title": "still queued"});
        let slack = id(&create(&app, "/api/v1/slack/messages", slack_body).await);

        // Everything is there first: the email captured, the delivery logged, the events.
        let deliveries = format!("/api/v1/webhooks/{hook}/deliveries");
        until("the email captured", async || {
            app.get_json(&format!("/api/v1/emails/{email}")).await["status"] == "captured"
        })
        .await;
        until("the webhook delivery", async || {
            !app.get_json(&deliveries).await["items"].as_array().unwrap().is_empty()
        })
        .await;
        let events = app.get_json("/api/v1/events?type=license.*").await;
        assert!(!events["items"].as_array().unwrap().is_empty(), "{events}");

        // Past the periods, the background pruning removes them.
        until("the pruning", async || {
            status(&app, &format!("/api/v1/emails/{email}")).await == 404
                && app.get_json(&deliveries).await["items"].as_array().unwrap().is_empty()
                && app.get_json("/api/v1/events?type=license.*").await["items"]
                    .as_array()
                    .unwrap()
                    .is_empty()
        })
        .await;
        // Queued messages, licences, webhooks and keys are never pruned.
        let queued = app.get_json(&format!("/api/v1/slack/messages/{slack}")).await;
        assert_eq!(queued["status"], "queued", "{queued}");
        assert_eq!(status(&app, &format!("/api/v1/webhooks/{hook}")).await, 200);
        let v = create(&app, "/api/v1/licenses/validate", json!({"key": key})).await;
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(status(&app, "/api/v1/api-keys").await, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_prune_prints_what_it_removed_and_off_keeps_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("eb.db");
    let url = format!("sqlite://{}", db.display());
    let app = TestApp::with_vars(&[("DATABASE_URL", &url), ("MAIL_TRANSPORT", "dev")], None).await;
    for n in 0..3 {
        create(
            &app,
            "/api/v1/licenses",
            json!({"product": "client", "name": format!("n{n}"), "owner_email": "ops@example.com"}),
        )
        .await;
    }
    let email_body = json!({"to": "ann@example.org", "subject": "kept", "text": "hi"});
    let email = id(&create(&app, "/api/v1/emails", email_body).await);
    until("the email captured", async || {
        app.get_json(&format!("/api/v1/emails/{email}")).await["status"] == "captured"
    })
    .await;
    // Events wait for the bridge's dispatch before they may go.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let prune = |events: &str| {
        run(
            dir.path(),
            &[
                ("DATABASE_URL", &url),
                ("SECRET_KEY", SECRET),
                ("EVENTS_RETENTION", events),
                ("MESSAGE_RETENTION", "off"),
                ("WEBHOOK_DELIVERY_RETENTION", "off"),
            ],
            &["prune"],
        )
    };
    let kept = prune("365d");
    assert!(kept.status.success(), "{}", String::from_utf8_lossy(&kept.stderr));
    assert_eq!(
        String::from_utf8_lossy(&kept.stdout).trim(),
        "pruned events: 0, emails: 0, slack messages: 0, webhook deliveries: 0"
    );
    let out = prune("1s");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events: u64 = printed
        .trim()
        .strip_prefix("pruned events: ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(events >= 3, "{printed}");
    assert!(printed.contains("emails: 0,"), "{printed}");
    // MESSAGE_RETENTION=off kept the email.
    assert_eq!(
        app.get_json(&format!("/api/v1/emails/{email}")).await["status"],
        "captured"
    );

    let bad = run(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("SECRET_KEY", SECRET),
            ("EVENTS_RETENTION", "soon"),
        ],
        &["prune"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("EVENTS_RETENTION"));
}
