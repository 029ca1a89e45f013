//! The production shape without Docker: two `gateway` processes on one MariaDB, with the
//! environment docker-compose.yml gives its replicas (hosts pointed at native peers:
//! moto for SES, an in-process S3, a fake Slack API). 1,000 emails and 200 Slack
//! messages go in across both replicas while one is killed (SIGKILL) and restarted;
//! every accepted message must reach its peer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailer::testing::SesTestServer;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cli::{create_key, serve};

const EMAILS: usize = 1000;
const SLACK: usize = 200;
const CONCURRENCY: usize = 8;

/// The `x-gateway` environment block of docker-compose.yml.
fn compose_env() -> Vec<(String, String)> {
    let compose = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker-compose.yml")).unwrap();
    let mut lines = compose.lines().skip_while(|l| !l.contains("environment: &gateway-env"));
    lines.next();
    lines
        .take_while(|l| l.starts_with("    "))
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

struct Replica {
    child: crate::cli::Served,
    base: String,
    dir: tempfile::TempDir,
}

fn start(env: &[(String, String)]) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (child, port, _logs) = serve(dir.path(), &vars);
    Replica {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

/// Submits `body` to the replicas in turn until one accepts it (a killed replica's
/// refusals are retried elsewhere with the same Idempotency-Key).
async fn submit(
    client: &reqwest::Client,
    bases: &[String],
    start: usize,
    path: &str,
    key: &str,
    idem: &str,
    body: &Value,
) {
    for attempt in 0..40 {
        let base = &bases[(start + attempt) % bases.len()];
        let res = client
            .post(format!("{base}{path}"))
            .bearer_auth(key)
            .header("Idempotency-Key", idem)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(r) = res
            && r.status() == 202
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{idem} was never accepted");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_deliver_everything_through_a_kill_and_restart() {
    let Some(db) = shared_db::testing::TestDb::mysql().await else {
        return;
    };
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    let s3 = blob_store::testing::S3TestServer::start().await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C1", "ts": "1764339120.000100", "message": {"ts": "1764339120.000100"},
        })))
        .mount(&slack)
        .await;
    let sender = format!("e2e-{}@example.com", uuid::Uuid::now_v7().simple());
    ses.verify(&sender).await;

    let target = url::Url::parse(db.url.expose_target()).unwrap();
    let s3_config = s3.config(8 * 1024 * 1024);
    let overrides: HashMap<&str, String> = HashMap::from([
        ("DB_HOST", target.host_str().unwrap().to_owned()),
        ("DB_PORT", target.port().unwrap_or(3306).to_string()),
        ("DB_NAME", target.path().trim_start_matches('/').to_owned()),
        ("DB_USER_ID", target.username().to_owned()),
        ("DB_PASS", target.password().unwrap_or_default().to_owned()),
        ("AWS_ACCESS_KEY_ID", blob_store::testing::ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", blob_store::testing::SECRET_KEY.to_owned()),
        ("SES_SENDER_EMAIL", sender.clone()),
        ("AWS_ENDPOINT_URL_SES", ses.url().to_owned()),
        ("S3_BUCKET", s3_config.bucket.clone()),
        ("AWS_ENDPOINT_URL_S3", s3_config.endpoint.clone().unwrap()),
        ("APP_URL", "http://127.0.0.1:8080".to_owned()),
        // The compose stack has no Slack (the dev sink); here a fake Slack takes the posts.
        ("SLACK_TRANSPORT", "slack".to_owned()),
    ]);
    let mut env: Vec<(String, String)> = compose_env()
        .into_iter()
        .map(|(k, v)| {
            let v = overrides.get(k.as_str()).cloned().unwrap_or(v);
            (k, v)
        })
        .collect();
    for var in [
        "DB_HOST",
        "DB_NAME",
        "SECRET_KEY",
        "SES_SENDER_EMAIL",
        "S3_BUCKET",
        "AWS_ENDPOINT_URL_SES",
    ] {
        assert!(
            env.iter().any(|(k, _)| k == var),
            "docker-compose.yml no longer sets {var}"
        );
    }
    env.extend(
        [
            ("SLACK_BOT_TOKEN", "xoxb-e2e".to_owned()),
            ("SLACK_API_URL", format!("{}/api", slack.uri())),
            ("SLACK_MESSAGES_PER_SECOND", "1000".to_owned()),
            ("EMAIL_MAX_SEND_RATE", "100000".to_owned()),
            ("JOB_LEASE_SECS", "3".to_owned()),
            ("LOG_LEVEL", "warn".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );

    let dir = tempfile::tempdir().unwrap();
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let key = create_key(dir.path(), &vars, "e2e", "emails:send,slack:post");

    let a = start(&env);
    let mut b = start(&env);
    let client = reqwest::Client::new();
    let bases = Arc::new(std::sync::RwLock::new(vec![a.base.clone(), b.base.clone()]));
    let started = Instant::now();

    // (path, idempotency key, body) for every message, interleaved.
    let mut work: Vec<(&str, String, Value)> = Vec::new();
    for i in 0..EMAILS {
        work.push((
            "/api/v1/emails",
            format!("e2e-email-{i}"),
            json!({"to": format!("user{i}@example.org"), "subject": format!("e2e email {i}"), "text": "x"}),
        ));
        if i % 5 == 0 {
            let n = i / 5;
            work.push((
                "/api/v1/slack/messages",
                format!("e2e-slack-{n}"),
                json!({"channel": format!("#e2e-{}", n % 20), "level": "info", "title": format!("e2e slack {n}")}),
            ));
        }
    }
    let total = work.len();
    let work = Arc::new(std::sync::Mutex::new(work.into_iter().enumerate()));
    let mut killed = false;
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (work, bases, client, key) = (work.clone(), bases.clone(), client.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = work.lock().unwrap().next();
                let Some((i, (path, idem, body))) = next else { break };
                let current = bases.read().unwrap().clone();
                submit(&client, &current, i, path, &key, &idem, &body).await;
            }
        }));
    }
    // Kill replica B a third of the way in (SIGKILL), then start it again.
    loop {
        let done = tasks.iter().all(|t| t.is_finished());
        if done {
            break;
        }
        let left = {
            let guard = work.lock().unwrap();
            guard.len()
        };
        if !killed && left < total * 2 / 3 {
            b.child.kill().unwrap(); // SIGKILL: no drain, jobs in flight abandoned
            b.child.wait().unwrap();
            killed = true;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let restarted = start(&env);
            *bases.write().unwrap() = vec![a.base.clone(), restarted.base.clone()];
            b = restarted;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(killed, "the kill happened mid-stream");
    let accepted_in = started.elapsed();

    // Everything reaches its peer.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (emails, posts) = loop {
        let emails = ses.sent_from(&sender).await;
        let posts: Vec<Value> = slack
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("chat.postMessage"))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        if emails.len() >= EMAILS && posts.len() >= SLACK {
            tokio::time::sleep(Duration::from_secs(4)).await; // let any duplicate show up
            break (ses.sent_from(&sender).await, posts);
        }
        assert!(
            Instant::now() < deadline,
            "after 120 s: {} of {EMAILS} emails, {} of {SLACK} Slack messages",
            emails.len(),
            posts.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut subjects: HashMap<String, usize> = HashMap::new();
    for m in &emails {
        let subject = m
            .raw_data
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap()
            .to_owned();
        *subjects.entry(subject).or_default() += 1;
    }
    let mut titles: HashMap<String, usize> = HashMap::new();
    for p in &posts {
        let text = p["text"].as_str().unwrap_or_default();
        let n: String = text
            .split_once("e2e slack ")
            .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default();
        *titles.entry(n).or_default() += 1;
    }
    for n in 0..SLACK {
        assert!(titles.contains_key(&n.to_string()), "Slack message {n} lost");
    }
    for i in 0..EMAILS {
        assert!(subjects.contains_key(&format!("e2e email {i}")), "email {i} lost");
    }
    assert_eq!(subjects.len(), EMAILS);
    let email_dupes = emails.len() - EMAILS;
    let slack_dupes = posts.len() - SLACK;
    // At-least-once: only sends in flight on the killed replica (at most its
    // WORKER_CONCURRENCY, 8) can be repeated.
    assert!(
        email_dupes + slack_dupes <= 8,
        "{email_dupes} email and {slack_dupes} Slack repeats"
    );
    println!(
        "two replicas: {total} messages accepted in {:.1} s; delivered {} emails ({email_dupes} repeated) and {} Slack messages ({slack_dupes} repeated) in {:.1} s",
        accepted_in.as_secs_f64(),
        emails.len(),
        posts.len(),
        started.elapsed().as_secs_f64()
    );
    for mut r in [a, b] {
        r.child.kill().unwrap();
        r.child.wait().unwrap();
        drop(r.dir);
    }
}
