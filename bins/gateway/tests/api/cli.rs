//! The `gateway` binary itself: subcommands, zero-configuration start-up and shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Go;
use serde_json::{Value, json};
use shared_db::testing::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_gateway");

/// The binary with a clean environment, run in `dir` (no `.env` there unless a test writes one).
fn gateway(dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir).envs(vars.iter().copied());
    cmd
}

pub fn run(dir: &std::path::Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    gateway(dir, vars).args(args).output().unwrap()
}

/// `gateway api-keys create --name {name} --scopes {scopes}`.
fn create_key_output(dir: &std::path::Path, vars: &[(&str, &str)], name: &str, scopes: &str) -> Output {
    run(dir, vars, &["api-keys", "create", "--name", name, "--scopes", scopes])
}

/// Creates an API key with the CLI, asserting it succeeds, and returns the key.
pub fn create_key(dir: &std::path::Path, vars: &[(&str, &str)], name: &str, scopes: &str) -> String {
    let created = create_key_output(dir, vars, name, scopes);
    assert!(created.status.success(), "{}", stderr(&created));
    stdout(&created).trim().to_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn api_keys_create_prints_only_the_key_and_list_and_revoke_work() {
    let dir = tempfile::tempdir().unwrap();
    let created = create_key_output(dir.path(), &[], "ops", "emails:send,slack:post");
    assert!(created.status.success(), "{}", stderr(&created));
    let out = stdout(&created);
    let key = out.trim_end_matches('\n');
    assert!(
        !key.contains('\n') && key.starts_with("eb_") && key.len() == 55,
        "stdout was {out:?}"
    );
    assert!(dir.path().join("data/event-bridge.db").exists());
    assert!(dir.path().join("data/secret_key").exists());
    assert!(!stderr(&created).contains(key), "the key appears once, on stdout");

    let listed = run(dir.path(), &[], &["api-keys", "list", "--json"]);
    assert!(listed.status.success());
    let keys: serde_json::Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(keys[0]["name"], "ops");
    assert_eq!(keys[0]["scopes"], json!(["emails:send", "slack:post"]));
    assert!(!stdout(&listed).contains(key));
    let id = keys[0]["id"].as_str().unwrap();

    let table = run(dir.path(), &[], &["api-keys", "list"]);
    assert!(stdout(&table).contains(id) && stdout(&table).contains("active"));

    let revoked = run(dir.path(), &[], &["api-keys", "revoke", id]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let listed = run(dir.path(), &[], &["api-keys", "list", "--json"]);
    let keys: serde_json::Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(keys[0]["status"], "revoked");

    let missing = run(dir.path(), &[], &["api-keys", "revoke", "no-such-id"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no API key has that id"));
}

#[test]
fn api_keys_create_refuses_unknown_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let out = create_key_output(dir.path(), &[], "x", "emails:sned");
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("unknown scope `emails:sned`"), "{}", stderr(&out));
}

#[test]
fn api_keys_create_refuses_scopes_for_namespaces_that_do_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let out = create_key_output(dir.path(), &[], "x", "emails:send,blobs:read:nosuch");
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains(
            "`blobs:read:nosuch`: no storage namespace is called `nosuch`; the namespaces are client, web, ai"
        ),
        "{}",
        stderr(&out)
    );
    let listed = run(dir.path(), &[], &["api-keys", "list", "--json"]);
    assert_eq!(stdout(&listed).trim(), "[]", "nothing was created");
    let ok = create_key_output(dir.path(), &[], "x", "blobs:read:web,blobs:write:*");
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn configuration_errors_name_the_variable_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[("APP_PORT", "eighty")], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("APP_PORT"), "{}", stderr(&out));

    let out = run(
        dir.path(),
        &[("DATABASE_URL", "mysql://root@127.0.0.1:3306/test")],
        &["migrate"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SECRET_KEY"), "{}", stderr(&out));

    for bad in ["https://app.example.com/", "https://*.example.com", "app.example.com"] {
        let out = run(dir.path(), &[("CORS_ALLOWED_ORIGINS", bad)], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr(&out).contains("CORS_ALLOWED_ORIGINS"), "{}", stderr(&out));
        assert!(stderr(&out).contains(bad), "the value is named: {}", stderr(&out));
    }
}

#[test]
fn a_dotenv_file_in_the_working_folder_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "APP_PORT=\nDATA_DIR=custom-data\nDB_HOST=\n").unwrap();
    let out = run(dir.path(), &[], &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("custom-data/event-bridge.db").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_applies_then_reports_nothing_pending_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let mut targets = vec![("sqlite://fresh.db".to_owned(), None)];
    if let Some(db) = TestDb::mysql_unmigrated().await {
        targets.push((db.url.expose_target().to_owned(), Some(db)));
    }
    for (url, _db) in &targets {
        let vars = [
            ("DATABASE_URL", url.as_str()),
            ("SECRET_KEY", "0123456789abcdef0123"),
            ("BLOB_DIR", "blobs"),
        ];
        let status = run(dir.path(), &vars, &["migrate", "--status"]);
        assert!(stdout(&status).contains("20261128000001"), "{}", stderr(&status));
        let applied = run(dir.path(), &vars, &["migrate"]);
        assert!(applied.status.success(), "{}", stderr(&applied));
        assert!(stdout(&applied).contains("20261128000001"));
        let status = run(dir.path(), &vars, &["migrate", "--status"]);
        assert_eq!(stdout(&status), "", "nothing pending after migrate");
        let again = run(dir.path(), &vars, &["migrate"]);
        assert!(again.status.success() && stdout(&again).is_empty());
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `gateway` (serve) and waits until /healthz answers.
/// A gateway process that is killed when dropped, so a failed assertion never leaves
/// one running.
pub struct Served(std::process::Child);

impl std::ops::Deref for Served {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn serve(dir: &std::path::Path, vars: &[(&str, &str)]) -> (Served, u16, std::thread::JoinHandle<String>) {
    let port = free_port();
    let port_s = port.to_string();
    let mut all = vec![("APP_PORT", port_s.as_str()), ("APP_HOST", "127.0.0.1")];
    all.extend_from_slice(vars);
    let mut child = Served(
        gateway(dir, &all)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let err = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port, logs)
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    child.wait().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_configuration_serves_docs_and_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, logs) = serve(dir.path(), &[]);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(client.get(format!("{base}/healthz")).go().await.status(), 200);
    assert_eq!(client.get(format!("{base}/readyz")).go().await.status(), 200);
    let docs = client.get(format!("{base}/docs/")).go().await;
    assert_eq!(docs.status(), 200);
    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status:?}");
    let logs = logs.join().unwrap();
    assert!(
        logs.contains("embedded default"),
        "the first lines say it runs on SQLite: {logs}"
    );
    assert!(logs.contains("SECRET_KEY is not set"), "{logs}");
    assert!(logs.contains("Event Bridge stopped"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_request_ids_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cret-value-that-must-not-leak-0123";
    let (mut child, port, logs) = serve(
        dir.path(),
        &[("LOG_FORMAT", "json"), ("SECRET_KEY", secret), ("LOG_LEVEL", "debug")],
    );
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/api-keys"))
        .header("x-request-id", "trace-me-42")
        .bearer_auth("eb_wrong")
        .go()
        .await;
    assert_eq!(res.status(), 401);
    assert!(terminate(&mut child).success());
    let logs = logs.join().unwrap();
    let lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "{logs}");
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == "trace-me-42" && l["status"] == 401),
        "{logs}"
    );
    assert!(!logs.contains(secret) && !logs.contains("eb_wrong"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_binary_migrates_and_serves_mariadb() {
    let Some(db) = TestDb::mysql_unmigrated().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, logs) = serve(
        dir.path(),
        &[
            ("DATABASE_URL", db.url.expose_target()),
            ("SECRET_KEY", "0123456789abcdef0123"),
            ("BLOB_DIR", "blobs"),
        ],
    );
    let res = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["database"], "mysql");
    assert!(terminate(&mut child).success());
    assert!(logs.join().unwrap().contains("applied database migrations"));
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_exits_zero_only_when_the_gateway_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, _logs) = serve(dir.path(), &[]);
    let url = format!("http://127.0.0.1:{port}/healthz");
    let ok = run(dir.path(), &[], &["healthcheck", "--url", &url]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(terminate(&mut child).success());
    let down = run(dir.path(), &[], &["healthcheck", "--url", &url]);
    assert!(!down.status.success());
    let not_found = run(
        dir.path(),
        &[("APP_PORT", &port.to_string())],
        &["healthcheck", "--url", "http://127.0.0.1:9/none"],
    );
    assert!(!not_found.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_used_reaches_the_debug_logs() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "root-secret-key-never-logged-0123456789";
    let slack_token = "xoxb-slack-token-never-logged-42";
    let aws_secret = "aws-secret-access-key-never-logged-42";
    let vars = [
        ("SECRET_KEY", secret),
        ("LOG_LEVEL", "trace"),
        ("LOG_FORMAT", "json"),
        ("SLACK_BOT_TOKEN", slack_token),
        ("SLACK_API_URL", "http://127.0.0.1:9/api"),
        ("SLACK_DEFAULT_CHANNEL", "#ops"),
        ("SES_SENDER_EMAIL", "app@example.com"),
        ("AWS_SES_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", aws_secret),
        ("AWS_ENDPOINT_URL_SES", "http://127.0.0.1:9"),
    ];
    let admin = create_key(dir.path(), &vars, "admin", "*");
    let (mut child, port, logs) = serve(dir.path(), &vars);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).bearer_auth(&admin).json(&body);
    let key = post("/api/v1/api-keys", json!({"name": "k", "scopes": ["events:read"]}))
        .go_json()
        .await;
    let api_key = key["key"].as_str().unwrap().to_owned();
    let lic = post(
        "/api/v1/licenses",
        json!({"product": "client", "name": "Acme", "owner_email": "it@acme.example", "duration": "30d"}),
    )
    .go_json()
    .await;
    let licence_key = lic["key"].as_str().unwrap().to_owned();
    let res = client
        .post(format!("{base}/api/v1/licenses/validate"))
        .json(&json!({"key": licence_key}))
        .go()
        .await;
    assert_eq!(res.status(), 200);
    let hook = post(
        "/api/v1/webhooks",
        json!({"url": "https://hooks.example.com/x", "event_types": ["*"]}),
    )
    .go_json()
    .await;
    let hook_secret = hook["secret"].as_str().unwrap().to_owned();
    post(
        "/api/v1/emails",
        json!({"to": "a@example.org", "subject": "s", "text": "t"}),
    )
    .go()
    .await;
    post("/api/v1/slack/messages", json!({"level": "info", "title": "t"}))
        .go()
        .await;
    let res = client
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(&api_key)
        .go()
        .await;
    assert_eq!(res.status(), 200);
    // Let the worker try SES and Slack (both unreachable) and the bridge run.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(terminate(&mut child).success());
    let logs = logs.join().unwrap();
    assert!(logs.lines().count() > 20, "trace logging produced little: {logs}");
    for (what, value) in [
        ("SECRET_KEY", secret),
        ("the admin API key", admin.as_str()),
        ("a created API key", api_key.as_str()),
        ("a licence key", licence_key.as_str()),
        ("the Slack token", slack_token),
        ("the AWS secret", aws_secret),
        ("a webhook secret", hook_secret.as_str()),
    ] {
        assert!(!logs.contains(value), "{what} appears in the logs");
    }
}

mod shutdown;
