//! Shutdown under load: the deadline, live streams, and raw exchanges with the binary.

use super::*;

/// A shutdown ends at `SHUTDOWN_TIMEOUT_SECS` whatever is still running: here a Slack
/// send in flight to an API that accepts the connection and never answers (the review
/// found a process still running minutes after SIGTERM).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_at_the_shutdown_timeout_whatever_still_runs() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slack_url = format!("http://{}/api", silent.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("SLACK_BOT_TOKEN", "xoxb-test-token"),
        ("SLACK_API_URL", slack_url.as_str()),
        ("SLACK_DEFAULT_CHANNEL", "#ops"),
        ("SHUTDOWN_TIMEOUT_SECS", "2"),
    ];
    let created = run(
        dir.path(),
        &vars,
        &["api-keys", "create", "--name", "t", "--scopes", "slack:post"],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let key = stdout(&created).trim().to_owned();
    let (mut child, port, logs) = serve(dir.path(), &vars);
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/slack/messages"))
        .bearer_auth(&key)
        .json(&serde_json::json!({ "level": "info", "title": "never answered" }))
        .go()
        .await;
    assert_eq!(res.status(), 202);
    // The send is in flight once the silent "Slack" has its connection.
    silent.set_nonblocking(true).unwrap();
    let waiting = Instant::now();
    let _held = loop {
        match silent.accept() {
            Ok((held, _)) => break held,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    waiting.elapsed() < Duration::from_secs(20),
                    "the Slack send never started"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    };
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM with SHUTDOWN_TIMEOUT_SECS=2"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1), "a forced exit is not a clean one");
    let logs = logs.join().unwrap();
    assert!(logs.contains("shutdown timed out"), "{logs}");
}

/// A live event stream ends when the server shuts down, saying so, instead of being cut
/// off at the deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_ends_live_streams_with_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("SHUTDOWN_TIMEOUT_SECS", "20")];
    let created = run(
        dir.path(),
        &vars,
        &["api-keys", "create", "--name", "t", "--scopes", "events:read"],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let key = stdout(&created).trim().to_owned();
    let (mut child, port, _logs) = serve(dir.path(), &vars);
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/events/stream"))
        .bearer_auth(&key)
        .go()
        .await;
    assert_eq!(res.status(), 200);
    let reader = tokio::spawn(async move { res.text().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status:?}");
    let text = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the stream ended with the server")
        .unwrap()
        .unwrap_or_default();
    assert!(text.ends_with(": closed: the server is shutting down\n\n"), "{text:?}");
}

/// Sends `request` as raw bytes and reads the answer until the gateway closes.
async fn raw_exchange(port: u16, request: &[u8]) -> (u16, String, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway closes after a malformed request")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, head.to_ascii_lowercase(), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_a_problem_document_and_log_at_warn() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, logs) = serve(dir.path(), &[("LOG_FORMAT", "json")]);
    // (A head over the size limit gets the same responder's 431 `headers_too_large`,
    // checked in error.rs: over the wire the gateway closes with the rest unread, so the
    // client's kernel may drop the answer for the reset.)
    let cases: [(&[u8], u16, &str); 2] = [
        (
            b"GET /api/v1/events?count=\"5\" HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n",
            400,
            "malformed_request",
        ),
    ];
    let mut ids = Vec::new();
    for (request, status, code) in cases {
        let (got, head, body) = raw_exchange(port, request).await;
        assert_eq!(
            got,
            status,
            "{}: {head}\n{body}",
            String::from_utf8_lossy(&request[..40])
        );
        assert!(head.contains("content-type: application/problem+json"), "{head}");
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], status, "{body}");
        let id = body["request_id"].as_str().expect("a request id").to_owned();
        assert!(head.contains(&format!("x-request-id: {id}")), "{head}");
        ids.push(id);
    }
    // The connection was closed, not the server: it still answers.
    let ok = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(terminate(&mut child).success());
    let logs = logs.join().unwrap();
    let lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        !lines.iter().any(|l| l["level"] == "ERROR"),
        "a client's mistake is not logged as an error: {logs}"
    );
    for id in &ids {
        assert!(
            lines
                .iter()
                .any(|l| l["level"] == "WARN" && l["request_id"] == id.as_str()),
            "{id} is logged at WARN: {logs}"
        );
    }
}
