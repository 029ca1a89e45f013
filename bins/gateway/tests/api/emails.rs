//! `/api/v1/emails`, templates and suppressions over HTTP: SES (moto) end to end on both
//! backends, every refusal as a problem, scopes, SNS, and no loss when the gateway is
//! killed while sending.

use std::time::{Duration, Instant};

use mailer::testing::{SNS_TEST_CERT, SNS_TEST_KEY, SesTestServer, sns_message};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cli::{run, serve};
use crate::helpers::{Go, TestApp, assert_problem, delete, get, id_of, send_json};
use reqwest::Method;

fn ses_vars<'a>(ses: &'a SesTestServer, sender: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("SES_SENDER_EMAIL", sender),
        ("AWS_SES_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_SES", ses.url()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("EMAIL_MAX_SEND_RATE", "1000"),
    ]
}

pub async fn app_with(vars: &[(&str, &str)], mysql: bool) -> Option<TestApp> {
    if !mysql {
        return Some(TestApp::with_vars(vars, None).await);
    }
    let db = shared_db::testing::TestDb::mysql().await?;
    let url = db.url.expose_target().to_owned();
    let mut all = vars.to_vec();
    all.push(("DATABASE_URL", &url));
    Some(TestApp::with_vars(&all, Some(db)).await)
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    send_json(app, Method::POST, path, body).await
}

async fn wait_for(app: &TestApp, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let email: Value = get(app, &format!("/api/v1/emails/{id}")).await.json().await.unwrap();
        if email["status"] == status {
            return email;
        }
        assert!(Instant::now() < deadline, "still {email}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_through_ses_with_idempotency_on_both_backends() {
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    for mysql in [false, true] {
        let sender = format!("gw-{}@example.com", uuid::Uuid::now_v7().simple());
        ses.verify(&sender).await;
        let Some(app) = app_with(&ses_vars(&ses, &format!("Event Bridge <{sender}>")), mysql).await else {
            continue;
        };
        assert_eq!(app.state.mail.transport(), "ses");
        let body = json!({
            "to": "Ann <ann@example.org>", "subject": "Welcome", "text": "Hello Ann",
            "html": "<p>Hello Ann</p>", "tags": {"kind": "welcome"},
        });
        let send = |body: &Value, key: &str| {
            app.admin(Method::POST, "/api/v1/emails")
                .header("Idempotency-Key", key)
                .json(body)
                .go()
        };
        let res = send(&body, "welcome-ann").await;
        assert_eq!(res.status(), 202);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let accepted: Value = res.json().await.unwrap();
        assert_eq!(accepted["status"], "queued");
        let id = accepted["id"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("/api/v1/emails/{id}"));

        let again = send(&body, "welcome-ann").await;
        assert_eq!(again.status(), 202);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());
        let mut other = body.clone();
        other["subject"] = json!("Another");
        assert_problem(send(&other, "welcome-ann").await, 409, "idempotency_conflict").await;

        let email = wait_for(&app, &id, "sent").await;
        let sent = ses.sent_from(&sender).await;
        assert_eq!(sent.len(), 1, "one message despite the repeat");
        assert_eq!(email["provider_ids"], json!([sent[0].id]));
        assert_eq!(email["to"], json!(["\"Ann\" <ann@example.org>"]));
        assert_eq!(email["tags"]["kind"], "welcome");
        let kinds: Vec<&str> = email["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["email.queued", "email.sending", "email.sent"]);
        assert!(sent[0].raw_data.contains("Subject: Welcome"));

        let page: Value = get(&app, "/api/v1/emails?status=sent&limit=5")
            .await
            .json()
            .await
            .unwrap();
        assert!(page["items"].as_array().unwrap().iter().any(|e| e["id"] == id.as_str()));
        assert!(page["items"][0].get("history").is_none());
        assert_problem(
            get(&app, &format!("/api/v1/emails/{id}/raw")).await,
            404,
            "raw_not_available",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_request_is_a_clear_problem() {
    let app = TestApp::with_vars(
        &[
            ("SES_SENDER_EMAIL", "app@example.com"),
            ("EMAIL_MAX_MESSAGE_BYTES", "4096"),
        ],
        None,
    )
    .await;
    assert_eq!(app.state.mail.transport(), "dev");
    let ok = json!({"to": ["a@example.org"], "subject": "s", "text": "t"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let cases = [
        (
            with("to", json!(["a@example.org", "not an address"])),
            "invalid_field",
            Some("to[1]"),
        ),
        (with("to", json!([])), "invalid_field", Some("to")),
        (
            with(
                "to",
                json!((0..501).map(|i| format!("r{i}@example.org")).collect::<Vec<_>>()),
            ),
            "invalid_field",
            Some("to"),
        ),
        (
            with("to", json!(["a@example.org\r\nBcc: victim@example.org"])),
            "invalid_field",
            Some("to[0]"),
        ),
        (
            with("subject", json!("Hi\r\nBcc: victim@example.org")),
            "invalid_field",
            Some("subject"),
        ),
        (
            with("from", json!("Mallory <m@example.com")),
            "invalid_field",
            Some("from"),
        ),
        (
            with("headers", json!({"Bcc": "x@example.org"})),
            "invalid_field",
            Some("headers"),
        ),
        (
            with("headers", json!({"X-Ok": "a\nb"})),
            "invalid_field",
            Some("headers"),
        ),
        (with("tags", json!({"bad tag": "x"})), "invalid_field", Some("tags")),
        (
            with("attachments", json!([{"filename": "a.pdf", "content_base64": "***"}])),
            "invalid_field",
            Some("attachments[0].content_base64"),
        ),
        (
            with(
                "attachments",
                json!([{"filename": "run.exe", "content_base64": "AAAA"}]),
            ),
            "invalid_field",
            Some("attachments[0].filename"),
        ),
        (
            with(
                "attachments",
                json!([{"filename": "x.png", "content_base64": "AAAA", "content_id": "logo"}]),
            ),
            "invalid_field",
            Some("attachments"),
        ),
        (
            json!({"to": ["a@example.org"], "subject": "s"}),
            "invalid_field",
            Some("text"),
        ),
        (
            json!({"to": ["a@example.org"], "template": {"name": "nope", "variables": {}}}),
            "invalid_field",
            Some("template.name"),
        ),
    ];
    for (body, code, field) in cases {
        let p = assert_problem(post(&app, "/api/v1/emails", &body).await, 422, code).await;
        assert_eq!(p["field"].as_str(), field, "{body} -> {p}");
    }
    // Too large once built.
    let big = with(
        "attachments",
        json!([{"filename": "big.bin", "content_base64": data_encoding::BASE64.encode(&[7u8; 8192])}]),
    );
    assert_problem(post(&app, "/api/v1/emails", &big).await, 413, "message_too_large").await;
    // Unknown fields, wrong types, not JSON.
    assert_problem(
        post(&app, "/api/v1/emails", &with("too", json!("x"))).await,
        422,
        "invalid_body",
    )
    .await;
    let res = app
        .admin(Method::POST, "/api/v1/emails")
        .header("content-type", "text/plain")
        .body("hello")
        .go()
        .await;
    assert_problem(res, 415, "unsupported_media_type").await;
    // Batches: size and the index of the bad message.
    let p = assert_problem(
        post(
            &app,
            "/api/v1/emails/batch",
            &json!([ok.clone(), with("to", json!(["x"]))]),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    assert_eq!(p["field"], "[1].to[0]");
    let too_many: Vec<Value> = (0..101).map(|_| ok.clone()).collect();
    assert_problem(
        post(&app, "/api/v1/emails/batch", &json!(too_many)).await,
        422,
        "invalid_field",
    )
    .await;
    // Nothing was stored by any refusal.
    let page: Value = get(&app, "/api/v1/emails").await.json().await.unwrap();
    assert_eq!(page["items"], json!([]));
    assert_problem(get(&app, "/api/v1/emails/nope").await, 404, "email_not_found").await;
    // Issue 18's paging rule: limit 1 to 500 (default 100), a foreign cursor refused, both
    // as 400 invalid_query naming the parameter (was 422 invalid_field, limit 1 to 200).
    for list in [
        "/api/v1/emails",
        "/api/v1/email-templates",
        "/api/v1/email-suppressions",
    ] {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("cursor=%25%25%25", "cursor"),
        ] {
            let p = assert_problem(get(&app, &format!("{list}?{query}")).await, 400, "invalid_query").await;
            assert_eq!(p["field"], field, "{list}?{query}: {p}");
        }
        assert_eq!(get(&app, &format!("{list}?limit=500")).await.status(), 200, "{list}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_batches_and_the_dev_mailbox() {
    let app = TestApp::with_vars(&[("SES_SENDER_EMAIL", "Shop <shop@example.com>")], None).await;
    let put = |name: &str, body: Value| {
        app.admin(Method::PUT, &format!("/api/v1/email-templates/{name}"))
            .json(&body)
            .go()
    };
    let body =
        json!({"subject": "Order {{ order.id }} shipped", "html": "<p>Hi {{ name }}</p>", "text": "Hi {{ name }}"});
    let res = put("shipped", body.clone()).await;
    assert_eq!(res.status(), 201);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["variables"], json!(["name", "order"]));
    assert_eq!(put("shipped", body).await.status(), 200);
    let p = assert_problem(
        put("broken", json!({"subject": "x", "html": "{% if %}"})).await,
        422,
        "template_invalid",
    )
    .await;
    assert_eq!(p["field"], "html");
    assert_problem(
        put("bad name!", json!({"subject": "x", "text": "y"})).await,
        422,
        "invalid_field",
    )
    .await;
    let list: Value = get(&app, "/api/v1/email-templates").await.json().await.unwrap();
    let shipped = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "shipped")
        .unwrap();
    assert_eq!(shipped["version"], 2);

    let missing = json!({"to": "a@example.org", "template": {"name": "shipped", "variables": {"name": "Ann"}}});
    let p = assert_problem(
        post(&app, "/api/v1/emails", &missing).await,
        422,
        "template_variable_missing",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("`order.id`"), "{p}");

    let one = |to: &str| json!({"to": to, "template": {"name": "shipped", "variables": {"name": "<Ann>", "order": {"id": 7}}}});
    let res = post(
        &app,
        "/api/v1/emails/batch",
        &json!([one("a@example.org"), one("b@example.org")]),
    )
    .await;
    assert_eq!(res.status(), 202);
    let batch: Value = res.json().await.unwrap();
    assert_eq!(batch["items"].as_array().unwrap().len(), 2);
    let id = batch["items"][0]["id"].as_str().unwrap();
    // The dev mailbox sends nothing: the message is captured, never `sent`.
    let email = wait_for(&app, id, "captured").await;
    assert!(email.get("sent_at").is_none(), "{email}");
    let kinds: Vec<&str> = email["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["email.queued", "email.sending", "email.captured"]);
    let page: Value = get(&app, "/api/v1/emails?status=captured").await.json().await.unwrap();
    assert!(
        page["items"].as_array().unwrap().iter().any(|e| e["id"] == id),
        "{page}"
    );
    let page: Value = get(&app, "/api/v1/emails?status=sent").await.json().await.unwrap();
    assert_eq!(page["items"], json!([]), "nothing claims to be sent");
    let raw = get(&app, &format!("/api/v1/emails/{id}/raw")).await;
    assert_eq!(raw.headers()["content-type"], "message/rfc822");
    let raw = raw.text().await.unwrap();
    assert!(raw.contains("Subject: Order 7 shipped"));
    assert!(raw.contains("Hi &lt;Ann&gt;"));
    let listed: Value = get(
        &app,
        &format!("/api/v1/emails?batch_id={}", batch["batch_id"].as_str().unwrap()),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    let del = delete(&app, "/api/v1/email-templates/shipped").await;
    assert_eq!(del.status(), 204);
    assert_problem(
        get(&app, "/api/v1/email-templates/shipped").await,
        404,
        "email_template_not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn suppressions_and_scopes() {
    let app = TestApp::with_vars(&[("SES_SENDER_EMAIL", "app@example.com")], None).await;
    let add = post(
        &app,
        "/api/v1/email-suppressions",
        &json!({"address": "No@Example.org", "detail": "asked"}),
    )
    .await;
    assert_eq!(add.status(), 201);
    let again = post(
        &app,
        "/api/v1/email-suppressions",
        &json!({"address": "no@example.org"}),
    )
    .await;
    assert_eq!(again.status(), 200);
    let s: Value = get(&app, "/api/v1/email-suppressions/no@example.org")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (s["reason"].as_str(), s["detail"].as_str()),
        (Some("manual"), Some("asked"))
    );
    assert_problem(
        post(&app, "/api/v1/email-suppressions", &json!({"address": "nope"})).await,
        422,
        "invalid_field",
    )
    .await;
    let res = post(
        &app,
        "/api/v1/emails",
        &json!({"to": "no@example.org", "subject": "s", "text": "t"}),
    )
    .await;
    let id = id_of(res).await;
    let email = wait_for(&app, &id, "suppressed").await;
    assert_eq!(email["suppressed"], json!(["no@example.org"]));
    let delete = |addr: &str| {
        app.admin(Method::DELETE, &format!("/api/v1/email-suppressions/{addr}"))
            .go()
    };
    assert_eq!(delete("no@example.org").await.status(), 204);
    assert_problem(delete("no@example.org").await, 404, "suppression_not_found").await;

    // Scopes.
    let (_, reader) = app.create_key(&["emails:read"]).await;
    let (_, sender) = app.create_key(&["emails:send"]).await;
    let send = |key: &str| {
        app.as_key(key, Method::POST, "/api/v1/emails")
            .json(&json!({"to": "a@example.org", "subject": "s", "text": "t"}))
            .go()
    };
    assert_problem(send(&reader).await, 403, "insufficient_scope").await;
    assert_eq!(send(&sender).await.status(), 202);
    let res = app
        .as_key(&sender, Method::PUT, "/api/v1/email-templates/x")
        .json(&json!({"subject": "x", "text": "y"}))
        .go()
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app
        .as_key(&reader, Method::GET, "/api/v1/email-suppressions")
        .go()
        .await;
    assert_eq!(res.status(), 200);
    let res = app.client.get(app.url("/api/v1/emails")).go().await;
    assert_problem(res, 401, "missing_credentials").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_notifications_need_a_valid_signature() {
    let certs = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cert.pem"))
        .respond_with(ResponseTemplate::new(200).set_body_string(SNS_TEST_CERT))
        .mount(&certs)
        .await;
    let app = TestApp::with_vars(
        &[
            ("SES_SENDER_EMAIL", "app@example.com"),
            ("SNS_CERT_HOSTS", "127.0.0.1"),
            ("SNS_ALLOW_HTTP_CERTS", "true"),
        ],
        None,
    )
    .await;
    let res = post(
        &app,
        "/api/v1/emails",
        &json!({"to": "gone@example.org", "subject": "s", "text": "t"}),
    )
    .await;
    let id = id_of(res).await;
    let email = wait_for(&app, &id, "captured").await;
    let provider = email["provider_ids"][0].as_str().unwrap();
    let bounce = json!({"notificationType": "Bounce", "mail": {"messageId": provider},
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "gone@example.org"}]}});
    let cert = format!("{}/cert.pem", certs.uri());
    let msg = sns_message(
        "Notification",
        "arn:aws:sns:us-east-1:1:ses",
        &bounce.to_string(),
        &cert,
        json!({}),
        SNS_TEST_KEY,
    );
    let deliver = |body: String| {
        app.client
            .post(app.url("/api/v1/emails/events/sns"))
            .header("content-type", "text/plain; charset=UTF-8")
            .body(body)
            .send()
    };
    let mut forged = msg.clone();
    forged["Message"] = json!(bounce.to_string().replace("Permanent", "Transient"));
    assert_problem(deliver(forged.to_string()).await.unwrap(), 403, "sns_signature_invalid").await;
    assert_problem(deliver("not json".into()).await.unwrap(), 400, "sns_malformed").await;
    let ok = deliver(msg.to_string()).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["result"], "processed");
    let s = get(&app, "/api/v1/email-suppressions/gone@example.org").await;
    assert_eq!(s.json::<Value>().await.unwrap()["reason"], "bounce");
    // The bounce is recorded and suppresses the address, but a message the dev mailbox
    // captured was never sent, so it does not become `bounced` (the SNS tests of the
    // mailer crate follow a sent message through bounces, deliveries and complaints).
    let email: Value = get(&app, &format!("/api/v1/emails/{id}")).await.json().await.unwrap();
    assert_eq!(email["status"], "captured", "{email}");
    assert!(
        email["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["type"] == "email.bounced"),
        "{email}"
    );
}

mod faults;
