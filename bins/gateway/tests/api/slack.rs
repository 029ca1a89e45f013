use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Go, TestApp, assert_problem, get, id_of, request_with, send_json};

fn slack_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true, "channel": "C0123ABCD", "ts": "1764339120.000100", "message": { "ts": "1764339120.000100" },
    }))
}

async fn app_with_fake_slack(mysql: bool) -> Option<(TestApp, MockServer)> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(slack_ok())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.update"))
        .respond_with(slack_ok())
        .mount(&server)
        .await;
    let api = format!("{}/api", server.uri());
    let vars = [
        ("SLACK_BOT_TOKEN", "xoxb-gateway-test"),
        ("SLACK_API_URL", api.as_str()),
        ("SLACK_MESSAGES_PER_SECOND", "1000"),
        ("SLACK_DEFAULT_CHANNEL", "#ops"),
    ];
    let app = if mysql {
        let db = shared_db::testing::TestDb::mysql().await?;
        let url = db.url.expose_target().to_owned();
        let mut all = vars.to_vec();
        all.push(("DATABASE_URL", &url));
        TestApp::with_vars(&all, Some(db)).await
    } else {
        TestApp::with_vars(&vars, None).await
    };
    Some((app, server))
}

async fn wait_for_status(app: &TestApp, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg: Value = app.get_json(&format!("/api/v1/slack/messages/{id}")).await;
        if msg["status"] == status || tokio::time::Instant::now() > deadline {
            return msg;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_is_accepted_delivered_and_updated_on_both_backends() {
    for mysql in [false, true] {
        let Some((app, server)) = app_with_fake_slack(mysql).await else {
            continue;
        };
        let body = json!({
            "level": "error", "title": "Queue backlog", "text": "12k jobs waiting",
            "fields": [{"title": "Queue", "value": "email"}], "links": [{"text": "Grafana", "url": "https://grafana.example/d/q"}],
            "source": "worker",
        });
        let res = app
            .admin(Method::POST, "/api/v1/slack/messages")
            .header("idempotency-key", "backlog-1")
            .json(&body)
            .go()
            .await;
        assert_eq!(res.status(), 202);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let accepted: Value = res.json().await.unwrap();
        let id = accepted["id"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("/api/v1/slack/messages/{id}"));

        let posted = wait_for_status(&app, &id, "posted").await;
        assert_eq!(posted["status"], "posted", "{posted}");
        assert_eq!(
            (posted["channel"].as_str(), posted["ts"].as_str()),
            (Some("#ops"), Some("1764339120.000100"))
        );
        let sent = server.received_requests().await.unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].headers["authorization"], "Bearer xoxb-gateway-test");

        // The same key and body: the same message, nothing sent twice. Another body: 409.
        let again = app
            .admin(Method::POST, "/api/v1/slack/messages")
            .header("idempotency-key", "backlog-1")
            .json(&body)
            .go()
            .await;
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());
        let mut other = body.clone();
        other["title"] = json!("different");
        let res = app
            .admin(Method::POST, "/api/v1/slack/messages")
            .header("idempotency-key", "backlog-1")
            .json(&other)
            .go()
            .await;
        assert_problem(res, 409, "idempotency_conflict").await;

        // Resolved: the posted message is updated in place.
        let res = send_json(
            &app,
            Method::PATCH,
            &location,
            &json!({"level": "success", "title": "Queue backlog cleared"}),
        )
        .await;
        assert_eq!(res.status(), 202);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while server.received_requests().await.unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let update = server.received_requests().await.unwrap().pop().unwrap();
        assert!(update.url.path().ends_with("chat.update"));
        let update: Value = serde_json::from_slice(&update.body).unwrap();
        assert_eq!(update["ts"], "1764339120.000100");

        let page: Value = app.get_json("/api/v1/slack/messages?status=posted&level=success").await;
        assert_eq!(page["items"][0]["id"], id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_without_a_token_messages_are_captured_by_the_dev_sink() {
    let app = TestApp::spawn().await;
    let res = send_json(
        &app,
        Method::POST,
        "/api/v1/slack/messages",
        &json!({"channel": "#dev", "level": "info", "title": "hello"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let id = id_of(res).await;
    let msg = wait_for_status(&app, &id, "captured").await;
    assert_eq!(msg["status"], "captured", "never claimed as posted: {msg}");
    assert!(msg["ts"].as_str().unwrap().starts_with("dev."), "{msg}");
    assert_eq!(msg["request"]["title"], "hello");
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_and_bad_input() {
    let app = TestApp::spawn().await;
    let res = send_json(
        &app,
        Method::POST,
        "/api/v1/slack/preview",
        &json!({"level": "critical", "title": "Site down", "mention": "here"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let preview: Value = res.json().await.unwrap();
    assert!(
        preview["text"]
            .as_str()
            .unwrap()
            .starts_with("<!here> :rotating_light:")
    );
    assert_eq!(preview["attachments"][0]["color"], "#8B0000");

    let post = |body: Value| app.admin(Method::POST, "/api/v1/slack/messages").json(&body).go();
    let res = post(json!({"level": "info", "title": "x"})).await;
    let problem = assert_problem(res, 422, "invalid_field").await;
    assert_eq!(problem["field"], "channel", "no channel and no default");
    let res = post(json!({"channel": "#a", "level": "info", "title": "x", "mention": "here"})).await;
    assert_eq!(assert_problem(res, 422, "invalid_field").await["field"], "mention");
    let res = post(json!({"channel": "#a", "level": "loud", "title": "x"})).await;
    assert_problem(res, 422, "invalid_body").await;
    let res = app
        .admin(Method::POST, "/api/v1/slack/messages")
        .header("idempotency-key", "has space")
        .json(&json!({"channel": "#a", "level": "info", "title": "x"}))
        .go()
        .await;
    assert_problem(res, 400, "invalid_idempotency_key").await;
    let res = get(&app, "/api/v1/slack/messages/nope").await;
    assert_problem(res, 404, "slack_message_not_found").await;
    // Issue 18's paging rule: limit 1 to 500 (default 100), a foreign cursor refused, both
    // as 400 invalid_query naming the parameter (was 422 invalid_field, limit 1 to 200).
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=%25%25%25", "cursor"),
    ] {
        let res = get(&app, &format!("/api/v1/slack/messages?{query}")).await;
        let problem = assert_problem(res, 400, "invalid_query").await;
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }
    assert_eq!(get(&app, "/api/v1/slack/messages?limit=500").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_slack_route_checks_credentials_and_scope() {
    let app = TestApp::spawn().await;
    let (_, poster) = app.create_key(&["slack:post"]).await;
    let (_, reader) = app.create_key(&["slack:read"]).await;
    let (_, other) = app.create_key(&["licenses:admin"]).await;
    let res = app
        .as_key(&poster, Method::POST, "/api/v1/slack/messages")
        .json(&json!({"channel": "#a", "level": "info", "title": "x"}))
        .go()
        .await;
    let id = id_of(res).await;
    let msg = json!({"channel": "#a", "level": "info", "title": "x"});
    // (method, path, body, needs slack:post, status for the right key)
    let routes: Vec<(Method, String, Option<Value>, bool, u16)> = vec![
        (
            Method::POST,
            "/api/v1/slack/messages".into(),
            Some(msg.clone()),
            true,
            202,
        ),
        (Method::POST, "/api/v1/slack/preview".into(), Some(msg), true, 200),
        (
            Method::PATCH,
            format!("/api/v1/slack/messages/{id}"),
            Some(json!({"title": "y"})),
            true,
            202,
        ),
        (Method::GET, "/api/v1/slack/messages".into(), None, false, 200),
        (Method::GET, format!("/api/v1/slack/messages/{id}"), None, false, 200),
    ];
    for (method, path, body, needs_post, ok) in routes {
        let send = |key: Option<&str>| request_with(&app, method.clone(), &path, key, body.as_ref()).go();
        assert_problem(send(None).await, 401, "missing_credentials").await;
        assert_problem(send(Some(&other)).await, 403, "insufficient_scope").await;
        if needs_post {
            assert_problem(send(Some(&reader)).await, 403, "insufficient_scope").await;
        } else {
            assert_eq!(
                send(Some(&reader)).await.status().as_u16(),
                ok,
                "{method} {path} with slack:read"
            );
        }
        assert_eq!(send(Some(&poster)).await.status().as_u16(), ok, "{method} {path}");
    }
}
