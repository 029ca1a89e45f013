//! Production on AWS (issue 15): TLS to a MySQL that requires it, the AWS credential
//! chain in front of S3, and `gateway check` against real peers. Each runs the binary,
//! as an operator would.

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shared_db::testing::tls_server::{self, TlsMariaDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cli::{create_key, free_port, run, serve};
use crate::helpers::Go;

const BIN: &str = env!("CARGO_BIN_EXE_gateway");

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `gateway` (serve) expected to give up: its output, or a failure after 60 s.
fn serve_expecting_failure(dir: &std::path::Path, vars: &[(&str, &str)]) -> Output {
    let port = free_port().to_string();
    let mut child = Command::new(BIN)
        .env_clear()
        .current_dir(dir)
        .envs(vars.iter().copied())
        .envs([("APP_PORT", port.as_str()), ("APP_HOST", "127.0.0.1")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_runs_on_a_mysql_that_requires_tls() {
    let Some(server) = TlsMariaDb::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = server.port().to_string();
    let ca = server.ca_file().display().to_string();
    // The original service's variables, as its .env names them.
    let mut vars = vec![
        ("DB_HOST", "localhost"),
        ("DB_PORT", port.as_str()),
        ("DB_NAME", tls_server::DATABASE),
        ("DB_USER_ID", tls_server::USER),
        ("DB_PASS", tls_server::PASSWORD),
        ("DB_IS_SSL", "true"),
        ("SECRET_KEY", "tls-test-secret-0123456789abcdef"),
        ("BLOB_DIR", "blobs"),
    ];

    // Without the CA that signed the server's certificate: a clear error, no panic.
    let refused = serve_expecting_failure(dir.path(), &vars);
    let (_, err) = text(&refused);
    assert!(!refused.status.success());
    assert!(err.contains("TLS") && err.contains("DB_SSL_CA"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // Without TLS the server refuses us; the error says so, still without a panic.
    let plain: Vec<_> = vars.iter().copied().filter(|(k, _)| *k != "DB_IS_SSL").collect();
    let refused = serve_expecting_failure(dir.path(), &plain);
    assert!(!refused.status.success());
    assert!(!text(&refused).1.contains("panicked"), "{}", text(&refused).1);

    // With DB_SSL_CA: `gateway check` says TLS is in use and what is pending.
    vars.push(("DB_SSL_CA", ca.as_str()));
    let checked = run(dir.path(), &vars, &["check"]);
    let (out, err) = text(&checked);
    assert!(checked.status.success(), "{out}{err}");
    let db_line = out.lines().find(|l| l.starts_with("database")).unwrap_or_default();
    assert!(db_line.contains("ok") || db_line.contains("warn"), "{out}");
    assert!(
        db_line.contains("over TLS") && db_line.contains("VerifyIdentity"),
        "{out}"
    );
    assert!(db_line.contains("migration(s) pending"), "{out}");
    assert!(out.contains("storage  ok"), "{out}");
    // On MySQL, channels with nothing set are named as not configured, with what to set.
    assert!(
        out.contains("ses      skip  not configured: email sends answer 503"),
        "{out}"
    );
    assert!(
        out.contains("fix: set SLACK_BOT_TOKEN (or SLACK_TRANSPORT=dev)"),
        "{out}"
    );

    // And it serves over TLS, migrations included.
    let (mut child, http_port, logs) = serve(dir.path(), &vars);
    let res = reqwest::get(format!("http://127.0.0.1:{http_port}/readyz"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
    assert!(logs.join().unwrap().contains("applied database migrations"));
    let checked = run(dir.path(), &vars, &["check"]);
    assert!(
        text(&checked).0.contains("no migration pending"),
        "{}",
        text(&checked).0
    );
}

/// An ECS container-credentials endpoint: counts its calls and checks the token.
struct CredentialsEndpoint {
    url: String,
    hits: Arc<AtomicUsize>,
    unauthorised: Arc<AtomicUsize>,
}

const CONTAINER_TOKEN: &str = "container-auth-token-123";

impl CredentialsEndpoint {
    /// Answers with `secret` and credentials valid for `lifetime`.
    async fn start(secret: &'static str, lifetime: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v2/credentials/task", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let unauthorised = Arc::new(AtomicUsize::new(0));
        let (h, u) = (hits.clone(), unauthorised.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (h, u) = (h.clone(), u.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    if !head.contains(&format!("authorization: {}", CONTAINER_TOKEN.to_ascii_lowercase())) {
                        u.fetch_add(1, Ordering::SeqCst);
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let expires = chrono::Utc::now() + lifetime;
                    let body = serde_json::json!({
                        "AccessKeyId": blob_store::testing::ACCESS_KEY,
                        "SecretAccessKey": secret,
                        "Token": "session-token-from-the-task-role",
                        "Expiration": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    })
                    .to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            url,
            hits,
            unauthorised,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_uses_the_container_role_and_refreshes_it_before_it_expires() {
    let s3 = blob_store::testing::S3TestServer::start().await;
    // Credentials that expire 12 s from issue. The SDK's cache renews them 10 s before
    // their expiry, less a random 0 to 5 s: 2 to 7 s after they were fetched.
    let creds = CredentialsEndpoint::start(blob_store::testing::SECRET_KEY, Duration::from_secs(12)).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().display().to_string();
    let vars = [
        ("HOME", home.as_str()),
        ("S3_BUCKET", blob_store::testing::BUCKET),
        ("AWS_ENDPOINT_URL_S3", s3.endpoint.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds.url.as_str()),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let key = create_key(dir.path(), &vars, "t", "*");

    // The original .env's unused variables are named once at start.
    let mut with_seed = vars.to_vec();
    with_seed.extend([("SLACK_CLIENT_ID", "1234.5678"), ("ALGORITHM", "pbkdf2_sha256")]);
    let (mut child, port, logs) = serve(dir.path(), &with_seed);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/api/v1/blobs/web/roles/a.txt");
    let put = |body: &'static str| client.put(&base).bearer_auth(&key).body(body).send();
    let res = put("first").await.unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    assert_eq!(creds.hits(), 1, "fetched once, then cached");
    let ready: serde_json::Value = client.get(format!("http://127.0.0.1:{port}/readyz")).go_json().await;
    assert_eq!(ready["transports"]["storage"], "s3", "{ready}");
    let got = client.get(&base).bearer_auth(&key).go().await;
    assert_eq!(got.text().await.unwrap(), "first");
    assert_eq!(creds.hits(), 1);
    // Past the renewal point: the next call fetches fresh credentials first.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let res = put("second").await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(creds.hits() >= 2, "refreshed before expiry: {} fetches", creds.hits());
    assert_eq!(
        creds.unauthorised.load(Ordering::SeqCst),
        0,
        "the container token was sent"
    );
    let _ = child.kill();
    let _ = child.wait();
    let logs = logs.join().unwrap();
    assert_eq!(logs.matches("SLACK_CLIENT_ID is set but unused").count(), 1, "{logs}");
    assert_eq!(logs.matches("ALGORITHM is set but unused").count(), 1, "{logs}");
    assert!(logs.contains("AWS credentials: the standard chain"), "{logs}");
    assert!(!logs.contains("session-token-from-the-task-role"), "{logs}");

    // `gateway check` says where the credentials came from and probes the bucket.
    let checked = run(dir.path(), &vars, &["check"]);
    let (out, err) = text(&checked);
    assert!(checked.status.success(), "{out}{err}");
    assert!(
        out.contains("aws      ok    credentials for S3 from container credentials"),
        "{out}"
    );
    assert!(
        !out.contains(CONTAINER_TOKEN) && !out.contains("session-token-from-the-task-role"),
        "{out}"
    );
    assert!(out.contains("temporary until"), "{out}");
    assert!(
        out.contains("s3       ok    bucket eb-test: HeadBucket; put, read back and deleted _event-bridge-check/"),
        "{out}"
    );
    let leftovers = std::fs::read_dir(s3.dir.path().join(blob_store::testing::BUCKET))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("_event-bridge-check"))
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten())
        .count();
    assert_eq!(leftovers, 0, "the probe object is deleted");

    // An S3-compatible store with keys of its own, and no AWS credentials anywhere: check
    // asks only for what is used, and passes.
    let own: Vec<_> = vars
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("AWS_CONTAINER"))
        .chain([
            ("S3_ACCESS_KEY_ID", blob_store::testing::ACCESS_KEY),
            ("S3_SECRET_ACCESS_KEY", blob_store::testing::SECRET_KEY),
        ])
        .collect();
    let checked = run(dir.path(), &own, &["check"]);
    let (out, err) = text(&checked);
    assert!(checked.status.success(), "{out}{err}");
    assert!(
        out.contains("aws      ok    credentials for S3 from S3_ACCESS_KEY_ID"),
        "{out}"
    );
    assert!(!out.contains(blob_store::testing::SECRET_KEY), "{out}");

    // A role whose secret S3 does not accept: check fails and names the bucket.
    let wrong = CredentialsEndpoint::start("not-the-secret", Duration::from_secs(3600)).await;
    let vars: Vec<_> = vars
        .iter()
        .map(|(k, v)| {
            if *k == "AWS_CONTAINER_CREDENTIALS_FULL_URI" {
                (*k, wrong.url.as_str())
            } else {
                (*k, *v)
            }
        })
        .collect();
    let checked = run(dir.path(), &vars, &["check"]);
    let (out, _) = text(&checked);
    assert!(!checked.status.success(), "{out}");
    assert!(out.contains("s3       FAIL  bucket eb-test: HeadBucket"), "{out}");
    assert!(out.contains("arn:aws:s3:::eb-test"), "the fix names the bucket: {out}");
    assert!(out.contains("failed: s3"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_tries_ses_and_slack_and_names_what_is_wrong() {
    let Some(ses) = mailer::testing::SesTestServer::start().await else {
        return;
    };
    let sender = format!("check-{}@example.com", uuid::Uuid::now_v7().simple());
    ses.verify(&sender).await;
    let slack = MockServer::start().await;
    Mock::given(path("/api/auth.test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "event-bridge",
            "team_id": "T1", "user_id": "U1", "bot_id": "B1",
        })))
        .mount(&slack)
        .await;
    let channel = |name: &str, member: bool| serde_json::json!({"id": format!("C{}", name.len()), "name": name, "created": 1_700_000_000, "is_member": member});
    Mock::given(path("/api/conversations.list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true,
            "channels": [channel("general", true), channel("ops", true), channel("quiet", false)],
            "response_metadata": {"next_cursor": ""},
        })))
        .mount(&slack)
        .await;
    let api = format!("{}/api", slack.uri());
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("SES_SENDER_EMAIL", sender.as_str()),
        ("AWS_SES_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_SES", ses.url()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("SLACK_BOT_TOKEN", "xoxb-check-test"),
        ("SLACK_API_URL", api.as_str()),
        ("SLACK_DEFAULT_CHANNEL", "#ops"),
    ];
    let checked = run(dir.path(), &vars, &["check"]);
    let (out, err) = text(&checked);
    assert!(checked.status.success(), "{out}{err}");
    assert!(
        out.contains("aws      ok    credentials for SES from environment (AWS_ACCESS_KEY_ID)"),
        "{out}"
    );
    assert!(out.contains("ses      ok    GetSendQuota in us-east-1"), "{out}");
    assert!(out.contains(&format!("sender {sender} verified")), "{out}");
    assert!(
        out.contains("slack    ok    auth.test: bot event-bridge in Acme; member of #ops"),
        "{out}"
    );
    assert!(!out.contains("xoxb-check-test"), "the token never appears");

    // An unverified sender and a channel the bot is not in: both named, exit non-zero.
    let stranger = format!("nobody-{}@unverified.example", uuid::Uuid::now_v7().simple());
    let bad: Vec<_> = vars
        .iter()
        .map(|(k, v)| match *k {
            "SES_SENDER_EMAIL" => (*k, stranger.as_str()),
            "SLACK_DEFAULT_CHANNEL" => (*k, "#quiet"),
            _ => (*k, *v),
        })
        .collect();
    let checked = run(dir.path(), &bad, &["check"]);
    let (out, _) = text(&checked);
    assert!(!checked.status.success(), "{out}");
    assert!(out.contains(&format!("the sender {stranger} is not verified")), "{out}");
    assert!(
        out.contains("not a member of #quiet") && out.contains("/invite @event-bridge"),
        "{out}"
    );
    assert!(out.contains("failed: ses, slack"), "{out}");

    // A token Slack refuses.
    Mock::given(path("/api/auth.test"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": false, "error": "invalid_auth"})),
        )
        .with_priority(1)
        .mount(&slack)
        .await;
    let checked = run(dir.path(), &vars, &["check"]);
    let (out, _) = text(&checked);
    assert!(!checked.status.success());
    assert!(
        out.contains("invalid_auth") && out.contains("fix: set SLACK_BOT_TOKEN"),
        "{out}"
    );
}
