//! `Idempotency-Key` belongs to the API key that sent it: another key using the same
//! value gets its own message (never the first key's id, never a 409), and only the
//! key's own repeats are replays. Emails, email batches and Slack, on both backends.

use serde_json::{Value, json};

use crate::helpers::{Go, TestApp, assert_problem};
use reqwest::Method;

async fn apps() -> Vec<TestApp> {
    let vars = [
        ("SES_SENDER_EMAIL", "Shop <shop@example.com>"),
        ("SLACK_DEFAULT_CHANNEL", "#ops"),
        // MySQL has no dev stand-ins unless asked for.
        ("MAIL_TRANSPORT", "dev"),
        ("SLACK_TRANSPORT", "dev"),
    ];
    let mut apps = vec![TestApp::with_vars(&vars, None).await];
    if let Some(db) = shared_db::testing::TestDb::mysql().await {
        let url = db.url.expose_target().to_owned();
        let mut all = vars.to_vec();
        all.push(("DATABASE_URL", &url));
        apps.push(TestApp::with_vars(&all, Some(db)).await);
    }
    apps
}

async fn send(app: &TestApp, token: &str, path: &str, key: &str, body: &Value) -> reqwest::Response {
    app.as_key(token, Method::POST, path)
        .header("Idempotency-Key", key)
        .json(body)
        .go()
        .await
}

/// (status, the resource's id, replayed?)
async fn outcome(res: reqwest::Response) -> (u16, String, bool) {
    let status = res.status().as_u16();
    let replayed = res.headers().get("idempotent-replayed").is_some();
    let body: Value = res.json().await.unwrap();
    let id = body["id"]
        .as_str()
        .or(body["batch_id"].as_str())
        .unwrap_or_default()
        .to_owned();
    (status, id, replayed)
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_belong_to_their_api_key() {
    for app in apps().await {
        let (_, alice) = app.create_key(&["emails:send", "slack:post"]).await;
        let (_, bob) = app.create_key(&["emails:send", "slack:post"]).await;
        let cases = [
            (
                "/api/v1/emails",
                json!({"to": "ann@example.org", "subject": "Order 1", "text": "Hi"}),
                json!({"to": "bob@example.net", "subject": "Mine", "text": "Hi"}),
            ),
            (
                "/api/v1/emails/batch",
                json!([{"to": "ann@example.org", "subject": "Order 1", "text": "Hi"}]),
                json!([{"to": "bob@example.net", "subject": "Mine", "text": "Hi"}]),
            ),
            (
                "/api/v1/slack/messages",
                json!({"level": "info", "title": "Order 1"}),
                json!({"level": "info", "title": "Mine"}),
            ),
        ];
        for (path, body, other) in cases {
            let (status, first, replayed) = outcome(send(&app, &alice, path, "order-1", &body).await).await;
            assert_eq!((status, replayed), (202, false), "{path}");
            // Bob, same key and body: his own message, not Alice's.
            let (status, his, replayed) = outcome(send(&app, &bob, path, "order-1", &body).await).await;
            assert_eq!((status, replayed), (202, false), "{path} {}", app.backend());
            assert_ne!(his, first, "{path}: bob got alice's resource");
            // Bob, same key, another body: his own message too, no 409.
            let (status, _, replayed) = outcome(send(&app, &bob, path, "order-2", &other).await).await;
            assert_eq!((status, replayed), (202, false), "{path}");
            let (status, theirs, replayed) = outcome(send(&app, &alice, path, "order-2", &body).await).await;
            assert_eq!(
                (status, replayed),
                (202, false),
                "{path}: alice is not blocked by bob's order-2"
            );
            assert_ne!(theirs, first);
            // Each key's own repeat is a replay of its own resource; another body a 409.
            let (status, again, replayed) = outcome(send(&app, &alice, path, "order-1", &body).await).await;
            assert_eq!(
                (status, again.as_str(), replayed),
                (202, first.as_str(), true),
                "{path}"
            );
            let (status, again, replayed) = outcome(send(&app, &bob, path, "order-1", &body).await).await;
            assert_eq!((status, again.as_str(), replayed), (202, his.as_str(), true), "{path}");
            assert_problem(
                send(&app, &alice, path, "order-1", &other).await,
                409,
                "idempotency_conflict",
            )
            .await;
        }
    }
}
