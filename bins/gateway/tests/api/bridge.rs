//! `/api/v1/rules` and `/api/v1/webhooks` over HTTP, with the gateway's own dispatch loop.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Go, TestApp, assert_problem};
use reqwest::Method;

async fn send(app: &TestApp, m: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = app.client.request(m, app.url(path)).bearer_auth(&app.admin_key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.go().await
}

async fn eventually<F: AsyncFnMut() -> bool>(mut check: F, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_posts_to_slack_when_a_licence_is_issued() {
    let app = TestApp::with_vars(&[("SLACK_DEFAULT_CHANNEL", "#ops")], None).await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/rules",
        Some(json!({
            "name": "announce platform licences",
            "event_type": "license.issued",
            "filter": {"product": "platform"},
            "actions": {"slack": {"level": "success", "title": "New {{ data.product }} licence for {{ data.owner_email }}"}},
        })),
    )
    .await;
    assert_eq!(res.status(), 201);
    let rule: Value = res.json().await.unwrap();
    // Let the dispatcher set its starting point before the event happens.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for product in ["client", "platform"] {
        let res = send(
            &app,
            reqwest::Method::POST,
            "/api/v1/licenses",
            Some(json!({"product": product, "name": "Acme", "owner_email": "it@acme.example", "duration": "30d"})),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    eventually(
        async || {
            let page: Value = send(&app, reqwest::Method::GET, "/api/v1/slack/messages", None)
                .await
                .json()
                .await
                .unwrap();
            page["items"].as_array().is_some_and(|i| !i.is_empty())
        },
        "the Slack message",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let page: Value = send(&app, reqwest::Method::GET, "/api/v1/slack/messages", None)
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the platform licence, once: {items:?}");
    assert_eq!(items[0]["title"], "New platform licence for it@acme.example");
    assert_eq!(items[0]["channel"], "#ops");

    let id = rule["id"].as_str().unwrap();
    let res = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/v1/rules/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["enabled"], false);
    let list: Value = send(&app, reqwest::Method::GET, "/api/v1/rules", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // The paging rule: `limit` 1 to 500, a foreign cursor refused, each naming the field.
    for (path, field) in [
        ("/api/v1/rules?limit=0", "limit"),
        ("/api/v1/rules?limit=501", "limit"),
        ("/api/v1/webhooks?limit=501", "limit"),
        ("/api/v1/webhooks?cursor=%25%25", "cursor"),
    ] {
        let p = assert_problem(send(&app, reqwest::Method::GET, path, None).await, 400, "invalid_query").await;
        assert_eq!(p["field"], field, "{path}");
    }
    assert_eq!(
        send(&app, reqwest::Method::DELETE, &format!("/api/v1/rules/{id}"), None)
            .await
            .status(),
        204
    );
    assert_problem(
        send(&app, reqwest::Method::GET, &format!("/api/v1/rules/{id}"), None).await,
        404,
        "rule_not_found",
    )
    .await;
    let p = assert_problem(
        send(
            &app,
            reqwest::Method::POST,
            "/api/v1/rules",
            Some(json!({"name": "loop", "event_type": "email.*", "actions": {"email": {"to": "a@example.org", "template": "x"}}})),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "event_type");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_receive_signed_events_and_log_each_attempt() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let app = TestApp::with_vars(&[("WEBHOOK_ALLOW_PRIVATE", "true")], None).await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/webhooks",
        Some(json!({"url": format!("{}/in", receiver.uri()), "event_types": ["api_key.*"], "description": "audit mirror"})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let hook: Value = res.json().await.unwrap();
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = hook["id"].as_str().unwrap().to_owned();
    let shown: Value = send(&app, reqwest::Method::GET, &format!("/api/v1/webhooks/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(shown.get("secret").is_none(), "the secret is shown once");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.create_key(&["events:read"]).await;
    eventually(
        async || !receiver.received_requests().await.unwrap_or_default().is_empty(),
        "the webhook delivery",
    )
    .await;
    let got = receiver.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "api_key.created");
    let sig = got[0].headers.get("webhook-signature").unwrap().to_str().unwrap();
    let ts: i64 = got[0]
        .headers
        .get("webhook-timestamp")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = bridge::sign(
        hook["secret"].as_str().unwrap().as_bytes(),
        body["id"].as_str().unwrap(),
        ts,
        &got[0].body,
    );
    assert_eq!(sig, format!("v1,{expected}"));
    eventually(
        async || {
            let log: Value = send(
                &app,
                reqwest::Method::GET,
                &format!("/api/v1/webhooks/{id}/deliveries"),
                None,
            )
            .await
            .json()
            .await
            .unwrap();
            log["items"][0]["status_code"] == 200
        },
        "the delivery log",
    )
    .await;
    assert_eq!(
        send(&app, reqwest::Method::DELETE, &format!("/api/v1/webhooks/{id}"), None)
            .await
            .status(),
        204
    );
    assert_problem(
        send(&app, reqwest::Method::GET, &format!("/api/v1/webhooks/{id}"), None).await,
        404,
        "webhook_not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_refuse_internal_targets_and_need_their_scope() {
    let app = TestApp::spawn().await;
    for url in [
        "http://127.0.0.1:8080/x",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
    ] {
        let p = assert_problem(
            send(
                &app,
                reqwest::Method::POST,
                "/api/v1/webhooks",
                Some(json!({"url": url, "event_types": ["*"]})),
            )
            .await,
            422,
            "invalid_field",
        )
        .await;
        assert_eq!(p["field"], "url");
    }
    let (_, key) = app.create_key(&["rules:admin"]).await;
    let res = app.as_key(&key, Method::GET, "/api/v1/webhooks").go().await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app.as_key(&key, Method::GET, "/api/v1/rules").go().await;
    assert_eq!(res.status(), 200);
}
