//! Email when things go wrong: a hanging SES, a kill mid-send, runaway templates, many mistakes at once.

use super::*;

/// Accepts connections and never answers: an SES that hangs mid-request.
fn blackhole() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn);
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_during_sending_loses_nothing() {
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    let sender = format!("kill-{}@example.com", uuid::Uuid::now_v7().simple());
    ses.verify(&sender).await;
    let dir = tempfile::tempdir().unwrap();
    let (hole, seen) = blackhole();
    let hanging = format!("http://127.0.0.1:{hole}");
    let base = [
        ("SECRET_KEY", "kill-test-secret-key-0123456789"),
        ("SES_SENDER_EMAIL", sender.as_str()),
        ("AWS_SES_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("EMAIL_MAX_SEND_RATE", "1000"),
        ("JOB_LEASE_SECS", "3"),
    ];
    let with_endpoint = |endpoint: &str| {
        let mut v: Vec<(&str, String)> = base.iter().map(|(k, v)| (*k, v.to_string())).collect();
        v.push(("AWS_ENDPOINT_URL_SES", endpoint.to_owned()));
        v
    };
    let created = run(
        dir.path(),
        &[("SECRET_KEY", "kill-test-secret-key-0123456789")],
        &[
            "api-keys",
            "create",
            "--name",
            "t",
            "--scopes",
            "emails:send,emails:read",
        ],
    );
    assert!(created.status.success());
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();

    let first = with_endpoint(&hanging);
    let first: Vec<(&str, &str)> = first.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut child, port, _logs) = serve(dir.path(), &first);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("http://127.0.0.1:{port}/api/v1/emails"))
        .bearer_auth(&key)
        .json(&json!({"to": ["a@example.org", "b@example.org"], "subject": "Survives", "text": "x"}))
        .go()
        .await;
    assert_eq!(res.status(), 202);
    let id = id_of(res).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the send never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL while the request to SES is in flight
    child.wait().unwrap();
    assert!(ses.sent_from(&sender).await.is_empty());

    let second = with_endpoint(ses.url());
    let second: Vec<(&str, &str)> = second.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut child, port, _logs) = serve(dir.path(), &second);
    let deadline = Instant::now() + Duration::from_secs(30);
    let email = loop {
        let email: Value = client
            .get(format!("http://127.0.0.1:{port}/api/v1/emails/{id}"))
            .bearer_auth(&key)
            .go_json()
            .await;
        if email["status"] == "sent" {
            break email;
        }
        assert!(Instant::now() < deadline, "not sent after the restart: {email}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sent = ses.sent_from(&sender).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(email["provider_ids"], json!([sent[0].id]));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A template with nested `range(100000)` × `range(2000)` loops ran for 10 s on an HTTP
/// worker, bigger ones for minutes past 1.4 GB: rendering is now bounded in steps and
/// output, and a runaway one is a 422 `template_limit_exceeded` naming the part. Storing
/// such a template only parses it. (The timeout guards against a hang; it asserts no
/// performance.)
#[tokio::test(flavor = "multi_thread")]
async fn runaway_templates_fail_fast_with_a_clear_problem() {
    let app = TestApp::with_vars(
        &[
            ("SES_SENDER_EMAIL", "Shop <shop@example.com>"),
            ("EMAIL_MAX_MESSAGE_BYTES", "1048576"),
        ],
        None,
    )
    .await;
    let put = |name: &str, body: Value| {
        app.admin(Method::PUT, &format!("/api/v1/email-templates/{name}"))
            .json(&body)
            .go()
    };
    let send = |name: &str, variables: Value| {
        app.admin(Method::POST, "/api/v1/emails")
            .json(&json!({"to": "a@example.org", "template": {"name": name, "variables": variables}}))
            .go()
    };
    tokio::time::timeout(Duration::from_secs(300), async {
        let loops = "{% for i in range(100000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}done";
        let res = put("loops", json!({"subject": "Loops", "text": loops})).await;
        assert_eq!(res.status(), 201);
        let p = assert_problem(send("loops", json!({})).await, 422, "template_limit_exceeded").await;
        assert_eq!(p["field"], "text");
        assert!(p["detail"].as_str().unwrap().contains("steps"), "{p}");

        for (name, text) in [
            ("repeat", r#"{{ "x" * 20000000 }}"#),
            ("printing", r#"{% for i in range(1000) %}{{ "y" * 10000 }}{% endfor %}"#),
            ("text", "{% for i in range(60000) %}0123456789abcdefghij{% endfor %}"),
            // Built and never printed: doubling through `set`, repeating in a loop.
            (
                "doubling",
                r#"{% set a = "x" * 500000 %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{{ d | length }}"#,
            ),
            ("repeating", r#"{% for i in range(50000) %}{% if "x" * 1000000 %}{% endif %}{% endfor %}"#),
        ] {
            let res = put(name, json!({"subject": "Bomb", "html": "<p>hi</p>", "text": text}))
                .await;
            assert_eq!(res.status(), 201);
            let p = assert_problem(send(name, json!({})).await, 422, "template_limit_exceeded").await;
            assert_eq!(p["field"], "text", "{name}");
        }

        // A large but ordinary template still renders and is queued.
        let table = "<table>{% for i in items %}<tr><td>{{ i.name }}</td><td>{{ i.qty }}</td></tr>{% endfor %}</table>";
        let res = put("table", json!({"subject": "{{ items | length }} items", "html": table}))
            .await;
        assert_eq!(res.status(), 201);
        let items: Vec<Value> = (0..2000)
            .map(|i| json!({"name": format!("item {i}"), "qty": i}))
            .collect();
        let res = send("table", json!({ "items": items })).await;
        assert_eq!(res.status(), 202);
        let id = id_of(res).await;
        let email = wait_for(&app, &id, "captured").await;
        assert_eq!(email["subject"], "2000 items");
    })
    .await
    .expect("rendering hung");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_answer_names_every_wrong_field_and_the_dev_mailbox_has_a_sender() {
    // No SES_SENDER_EMAIL: the dev mailbox signs with its own sender.
    let app = TestApp::spawn().await;
    assert_eq!(app.state.mail.transport(), "dev");
    let res = post(
        &app,
        "/api/v1/emails",
        &json!({"to": "ann@example.org", "subject": "Hi", "text": "Hello"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let id = id_of(res).await;
    let email = wait_for(&app, &id, "captured").await;
    assert_eq!(
        email["from"],
        mailer::address::Mailbox::parse(gateway::config::DEV_SENDER)
            .unwrap()
            .to_string(),
        "{email}"
    );

    // Everything missing or wrong at once: one 422 lists it all, in request order.
    let body = json!({"from": "not an address", "cc": ["ok@example.org", "bad"], "subject": "Line\nbreak",
                      "tags": {"bad tag": "x"}});
    let p = assert_problem(post(&app, "/api/v1/emails", &body).await, 422, "invalid_field").await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{p}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["from", "cc[1]", "text", "subject", "tags"], "{p}");
    assert_eq!(p["field"], "from", "{p}");
    for f in &fields {
        assert!(p["detail"].as_str().unwrap().contains(&format!("{f}: ")), "{p}");
    }
    // A batch names the message too.
    let p = assert_problem(
        post(
            &app,
            "/api/v1/emails/batch",
            &json!([{"to": "a@example.org", "subject": "ok", "text": "t"}, {}]),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["[1].to", "[1].text", "[1].subject"], "{p}");
    // A single mistake keeps the one-field shape (no list).
    let p = assert_problem(
        post(&app, "/api/v1/emails", &json!({"to": "a@example.org", "subject": "s"})).await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "text");
    assert!(p.get("errors").is_none(), "{p}");
}
