//! Honest transports: the dev stand-ins mark what they keep `captured` (never `sent` or
//! `posted`); on MySQL they run only when asked for (`MAIL_TRANSPORT=dev`,
//! `SLACK_TRANSPORT=dev`), and a channel with no transport refuses sends with 503
//! `not_configured`, storing nothing; rules skip it with one line at start-up; `/readyz`
//! lists each channel's mode.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use shared_db::testing::TestDb;
use shared_db::{events, with_conn};

use crate::cli::{run, serve};
use crate::helpers::{Go, SECRET, TestApp, assert_problem, id_of, send_json};

/// The app on a fresh MariaDB database with `vars`, or `None` outside CI when none answers.
async fn mysql_app(vars: &[(&str, &str)]) -> Option<TestApp> {
    let db = TestDb::mysql().await?;
    let url = db.url.expose_target().to_owned();
    let mut all = vars.to_vec();
    all.push(("DATABASE_URL", &url));
    Some(TestApp::with_vars(&all, Some(db)).await)
}

async fn call(app: &TestApp, m: Method, path: &str, body: &Value) -> reqwest::Response {
    app.admin(m, path)
        .header("Idempotency-Key", "first-try")
        .json(body)
        .go()
        .await
}

async fn readyz(app: &TestApp) -> Value {
    let res = app.client.get(app.url("/readyz")).go().await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.state.pool.get().await.unwrap();
    let n: N = with_conn!(&mut *conn, |c| diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(sql),
        c
    )
    .await)
    .unwrap();
    n.n
}

async fn wait_status(app: &TestApp, path: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = app.get_json(path).await;
        if v["status"] == status {
            return v;
        }
        assert!(Instant::now() < deadline, "{path} is still {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_mysql_with_nothing_configured_sends_answer_503_and_store_nothing() {
    let Some(app) = mysql_app(&[("SES_SENDER_EMAIL", "app@example.com")]).await else {
        return;
    };
    assert_eq!(
        readyz(&app).await["transports"],
        json!({"mail": "not_configured", "slack": "not_configured", "storage": "local", "database_tls": "none"})
    );
    let email = json!({"to": "ann@example.org", "subject": "Hi", "text": "Hello"});
    for (path, body) in [
        ("/api/v1/emails", email.clone()),
        ("/api/v1/emails/batch", json!([email])),
    ] {
        let res = call(&app, Method::POST, path, &body).await;
        assert!(res.headers().get("retry-after").is_none(), "retrying does not help");
        let p = assert_problem(res, 503, "not_configured").await;
        let detail = p["detail"].as_str().unwrap();
        for names in ["SES_SENDER_EMAIL", "AWS_SES_REGION", "MAIL_TRANSPORT=dev"] {
            assert!(detail.contains(names), "{path}: {detail}");
        }
    }
    let post = json!({"channel": "#ops", "level": "info", "title": "Deployed"});
    let patch = json!({"level": "success"});
    for (m, path, body) in [
        (Method::POST, "/api/v1/slack/messages", &post),
        (
            Method::PATCH,
            "/api/v1/slack/messages/01JAAAAAAAAAAAAAAAAAAAAAAA",
            &patch,
        ),
    ] {
        let p = assert_problem(call(&app, m, path, body).await, 503, "not_configured").await;
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("SLACK_BOT_TOKEN") && detail.contains("SLACK_TRANSPORT=dev"),
            "{path}: {detail}"
        );
    }
    // Nothing is sent by a preview: it still works.
    let res = call(&app, Method::POST, "/api/v1/slack/preview", &post).await;
    assert_eq!(res.status(), 200);

    for table in [
        "email_messages",
        "email_deliveries",
        "slack_messages",
        "jobs",
        "idempotency_keys",
    ] {
        assert_eq!(
            count(&app, &format!("SELECT COUNT(*) AS n FROM eb_{table}")).await,
            0,
            "{table}"
        );
    }
    let sends = "SELECT COUNT(*) AS n FROM eb_events WHERE event_type IN ('email.queued', 'slack.queued')";
    assert_eq!(count(&app, sends).await, 0);
}

/// The dev transports capture, on the embedded default and, when asked for, on MySQL:
/// the status says `captured`, and a captured Slack message can be replied to and
/// updated (in the dev sink).
#[tokio::test(flavor = "multi_thread")]
async fn the_dev_transports_capture_on_sqlite_and_on_mysql_when_asked() {
    let mut apps = vec![TestApp::with_vars(&[("SES_SENDER_EMAIL", "app@example.com")], None).await];
    apps.extend(
        mysql_app(&[
            ("SES_SENDER_EMAIL", "app@example.com"),
            ("MAIL_TRANSPORT", "dev"),
            ("SLACK_TRANSPORT", "dev"),
        ])
        .await,
    );
    for app in apps {
        let backend = app.backend();
        assert_eq!(
            readyz(&app).await["transports"],
            json!({"mail": "dev", "slack": "dev", "storage": "local", "database_tls": "none"}),
            "{backend}"
        );
        let res = call(
            &app,
            Method::POST,
            "/api/v1/emails",
            &json!({"to": "ann@example.org", "subject": "Hi", "text": "Hello"}),
        )
        .await;
        assert_eq!(res.status(), 202, "{backend}");
        let id = id_of(res).await;
        let email = wait_status(&app, &format!("/api/v1/emails/{id}"), "captured").await;
        assert!(email.get("sent_at").is_none(), "{email}");

        let res = call(
            &app,
            Method::POST,
            "/api/v1/slack/messages",
            &json!({"channel": "#ops", "level": "error", "title": "Disk full"}),
        )
        .await;
        assert_eq!(res.status(), 202, "{backend}");
        let id = id_of(res).await;
        let path = format!("/api/v1/slack/messages/{id}");
        let msg = wait_status(&app, &path, "captured").await;
        assert!(msg["ts"].as_str().unwrap().starts_with("dev."), "{msg}");

        let reply = send_json(
            &app,
            Method::POST,
            "/api/v1/slack/messages",
            &json!({"level": "info", "title": "Still full", "thread_of": id}),
        )
        .await;
        assert_eq!(reply.status(), 202);
        let reply = id_of(reply).await;
        let reply = wait_status(&app, &format!("/api/v1/slack/messages/{reply}"), "captured").await;
        assert_eq!(reply["thread_ts"], msg["ts"]);

        let res = call(&app, Method::PATCH, &path, &json!({"level": "success"})).await;
        assert_eq!(res.status(), 202);
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "captured");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut conn = app.state.pool.get().await.unwrap();
        loop {
            let trail = events::for_subject(&mut conn, &format!("slack_message:{id}"))
                .await
                .unwrap();
            if trail.iter().any(|e| e.event_type == "slack.updated") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the update did not reach the dev sink: {trail:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let page = app.get_json("/api/v1/slack/messages?status=captured").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
        let page = app.get_json("/api/v1/slack/messages?status=posted").await;
        assert_eq!(page["items"], json!([]), "nothing claims to be in Slack");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_names_the_real_transports() {
    let app = TestApp::with_vars(
        &[
            ("SES_SENDER_EMAIL", "app@example.com"),
            ("AWS_SES_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_ENDPOINT_URL_SES", "http://127.0.0.1:9"),
            ("SLACK_BOT_TOKEN", "xoxb-readyz"),
            ("SLACK_API_URL", "http://127.0.0.1:9/api"),
        ],
        None,
    )
    .await;
    let body = readyz(&app).await;
    assert_eq!(
        body["transports"],
        json!({"mail": "ses", "slack": "slack", "storage": "local", "database_tls": "none"})
    );
    assert_eq!(body["status"], "ready");
    let health: Value = app.client.get(app.url("/healthz")).go_json().await;
    assert!(health.get("transports").is_none(), "{health}");
}

#[test]
fn slack_transport_slack_without_a_token_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[("SLACK_TRANSPORT", "slack")], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SLACK_BOT_TOKEN") && err.contains("SLACK_TRANSPORT"),
        "{err}"
    );
}

/// A rule whose channel is not configured: each event is recorded `rule.skipped` (not
/// retried, not failed), and a gateway starting with such a rule says so in one line.
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_on_an_unconfigured_channel_is_skipped_with_one_line_at_start() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let url = db.url.expose_target().to_owned();
    let app = TestApp::with_vars(&[("DATABASE_URL", &url)], Some(db)).await;
    let res = call(
        &app,
        Method::POST,
        "/api/v1/rules",
        &json!({
            "name": "announce licences",
            "event_type": "license.issued",
            "actions": {"slack": {"channel": "#sales", "level": "info", "title": "New {{ data.product }} licence"}},
        }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let rule = id_of(res).await;
    // Let the dispatcher set its starting point before the events happen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for name in ["Acme", "Globex"] {
        let res = send_json(
            &app,
            Method::POST,
            "/api/v1/licenses",
            &json!({"product": "client", "name": name, "owner_email": "it@acme.example", "duration": "30d"}),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = app.state.pool.get().await.unwrap();
    let skipped = loop {
        let trail = events::for_subject(&mut conn, &format!("rule:{rule}")).await.unwrap();
        let skipped: Vec<_> = trail.into_iter().filter(|e| e.event_type == "rule.skipped").collect();
        // Done, not waiting for a retry.
        let open = count(&app, "SELECT COUNT(*) AS n FROM eb_jobs").await;
        if skipped.len() == 2 && open == 0 {
            break skipped;
        }
        assert!(Instant::now() < deadline, "{open} jobs; {skipped:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let data: Value = serde_json::from_str(&skipped[0].data).unwrap();
    assert_eq!(data["skipped"][0]["channel"], "slack", "{data}");
    assert!(
        data["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("SLACK_BOT_TOKEN")
    );
    let failed = "SELECT COUNT(*) AS n FROM eb_events WHERE event_type = 'rule.failed'";
    assert_eq!(count(&app, failed).await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM eb_slack_messages").await, 0);

    // A replica starting now, with the rule in place, says once what is skipped.
    let dir = tempfile::tempdir().unwrap();
    let (mut gateway, port, logs) = serve(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("SECRET_KEY", SECRET),
            ("LOG_LEVEL", "warn"),
            ("BLOB_DIR", "blobs"),
        ],
    );
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = gateway.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(gateway.wait().unwrap().success());
    let logs = logs.join().unwrap();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("skipped until configured"))
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    for part in [
        "rule \"announce licences\"",
        "licence reminder emails",
        "SLACK_BOT_TOKEN",
        "SLACK_TRANSPORT=dev",
        "MAIL_TRANSPORT=dev",
    ] {
        assert!(lines[0].contains(part), "{part}: {}", lines[0]);
    }
}
