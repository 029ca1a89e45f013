//! SES notifications through SNS: signatures checked against a certificate served by a
//! test server (a fixture key pair), forgeries refused, bounces and complaints turned
//! into statuses and suppressions, redeliveries recognised, subscriptions confirmed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use mailer::model::{EmailStatus, SendEmail, SuppressionFilter, SuppressionReason};
use mailer::sns::{SnsConfig, SnsError, SnsVerifier};
use mailer::testing::{SNS_OTHER_KEY, SNS_TEST_CERT, SNS_TEST_KEY, sign_sns, sns_message};
use mailer::transport::{Mailer, Quota, SendError};
use mailer::{MailError, MailService, MailSettings, SEND_QUEUE, SendHandler};
use serde_json::{Value, json};
use shared_db::testing::TestDb;
use shared_db::worker::{Worker, WorkerOptions};
use tokio::sync::Notify;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CERT: &str = SNS_TEST_CERT;
const KEY: &[u8] = SNS_TEST_KEY;
const OTHER_KEY: &[u8] = SNS_OTHER_KEY;
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

/// Stands in for SES: takes every message and answers a message id, as SES does (the
/// dev mailbox would only capture it, and SES never reports on what it never got).
struct AcceptingSes;

impl Mailer for AcceptingSes {
    fn name(&self) -> &'static str {
        "ses"
    }

    fn send<'a>(
        &'a self,
        _source: &'a str,
        _destinations: &'a [String],
        _raw: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async { Ok(format!("ses-{}", uuid::Uuid::now_v7().simple())) })
    }

    fn quota(&self) -> futures_util::future::BoxFuture<'_, Result<Option<Quota>, SendError>> {
        Box::pin(async { Ok(None) })
    }
}

struct Rig {
    server: MockServer,
    svc: Arc<MailService>,
    db: TestDb,
}

async fn rig_with(config: impl FnOnce(&MockServer) -> SnsConfig) -> Rig {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/SimpleNotificationService-test.pem"))
        .respond_with(ResponseTemplate::new(200).set_body_string(CERT))
        .mount(&server)
        .await;
    let db = TestDb::sqlite().await;
    let verifier = SnsVerifier::new(config(&server)).unwrap();
    let svc = Arc::new(
        MailService::new(
            db.pool.clone(),
            Some(Arc::new(AcceptingSes)),
            Some(verifier),
            MailSettings {
                default_from: Some("app@example.com".into()),
                ..MailSettings::default()
            },
            Arc::new(Notify::new()),
        )
        .unwrap(),
    );
    Rig { server, svc, db }
}

async fn rig() -> Rig {
    rig_with(|_| SnsConfig {
        cert_hosts: vec!["127.0.0.1".into()],
        allow_http: true,
        ..SnsConfig::default()
    })
    .await
}

/// An SNS delivery signed with `key`.
fn signed(rig: &Rig, kind: &str, message: &str, key: &[u8], extra: Value) -> Value {
    let cert = format!("{}/SimpleNotificationService-test.pem", rig.server.uri());
    sns_message(kind, TOPIC, message, &cert, extra, key)
}

/// Sends one message (through the stand-in SES); returns (email id, provider id).
async fn sent_email(rig: &Rig, to: &[&str]) -> (String, String) {
    let req = SendEmail {
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: Some("Hi".into()),
        text: Some("x".into()),
        ..SendEmail::default()
    };
    let (accepted, _) = rig.svc.submit(req, None, "t").await.unwrap();
    let w = Worker::new(
        rig.db.pool.clone(),
        WorkerOptions {
            poll_interval: Duration::from_millis(20),
            ..WorkerOptions::default()
        },
    )
    .register(SEND_QUEUE, SendHandler(rig.svc.clone()));
    w.drain().await.unwrap();
    let email = rig.svc.get(&accepted.id).await.unwrap();
    assert_eq!(email.status, EmailStatus::Sent);
    (accepted.id, email.provider_ids[0].clone())
}

fn bounce(provider_id: &str, kind: &str, addresses: &[&str]) -> String {
    json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind, "bounceSubType": "General",
            "bouncedRecipients": addresses.iter().map(|a| json!({"emailAddress": a, "diagnosticCode": "smtp; 550 5.1.1 user unknown"})).collect::<Vec<_>>(),
        },
        "mail": { "messageId": provider_id },
    })
    .to_string()
}

/// How many addresses are suppressed.
async fn suppressed(rig: &Rig) -> usize {
    let list = rig.svc.list_suppressions(&SuppressionFilter::default()).await;
    list.unwrap().items.len()
}

async fn handle(rig: &Rig, msg: &Value) -> Result<String, MailError> {
    rig.svc.handle_sns(msg.to_string().as_bytes()).await.map(|o| o.result)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_bounce_suppresses_and_marks_the_message() {
    let r = rig().await;
    let (id, provider) = sent_email(&r, &["gone@example.org", "fine@example.org"]).await;
    let msg = signed(
        &r,
        "Notification",
        &bounce(&provider, "Permanent", &["Gone <gone@example.org>"]),
        KEY,
        json!({}),
    );
    assert_eq!(handle(&r, &msg).await.unwrap(), "processed");
    assert_eq!(handle(&r, &msg).await.unwrap(), "duplicate");
    let email = r.svc.get(&id).await.unwrap();
    assert_eq!(email.status, EmailStatus::Bounced);
    let bounced = email
        .history
        .unwrap()
        .into_iter()
        .find(|h| h.kind == "email.bounced")
        .unwrap();
    assert_eq!(bounced.data["recipients"][0]["address"], "gone@example.org");
    let list = r.svc.list_suppressions(&SuppressionFilter::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].address, "gone@example.org");
    assert_eq!(list.items[0].reason, SuppressionReason::Bounce);
    assert_eq!(list.items[0].email_id.as_deref(), Some(id.as_str()));

    // A later delivery report does not hide the bounce.
    let delivery = json!({"notificationType": "Delivery", "mail": {"messageId": provider},
        "delivery": {"recipients": ["fine@example.org"], "smtpResponse": "250 ok"}});
    let msg = signed(&r, "Notification", &delivery.to_string(), KEY, json!({}));
    handle(&r, &msg).await.unwrap();
    assert_eq!(r.svc.get(&id).await.unwrap().status, EmailStatus::Bounced);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_bounces_record_only_and_deliveries_and_complaints_update() {
    let r = rig().await;
    let (id, provider) = sent_email(&r, &["busy@example.org"]).await;
    let msg = signed(
        &r,
        "Notification",
        &bounce(&provider, "Transient", &["busy@example.org"]),
        KEY,
        json!({"Subject": "Amazon SES Email Event Notification"}),
    );
    handle(&r, &msg).await.unwrap();
    assert_eq!(r.svc.get(&id).await.unwrap().status, EmailStatus::Sent);
    let delivery = json!({"notificationType": "Delivery", "mail": {"messageId": provider},
        "delivery": {"recipients": ["busy@example.org"], "smtpResponse": "250 ok"}});
    handle(&r, &signed(&r, "Notification", &delivery.to_string(), KEY, json!({})))
        .await
        .unwrap();
    assert_eq!(r.svc.get(&id).await.unwrap().status, EmailStatus::Delivered);
    let complaint = json!({"notificationType": "Complaint", "mail": {"messageId": provider},
        "complaint": {"complainedRecipients": [{"emailAddress": "busy@example.org"}], "complaintFeedbackType": "abuse"}});
    handle(&r, &signed(&r, "Notification", &complaint.to_string(), KEY, json!({})))
        .await
        .unwrap();
    assert_eq!(r.svc.get(&id).await.unwrap().status, EmailStatus::Complained);
    let s = r.svc.suppression("busy@example.org").await.unwrap();
    assert_eq!(s.reason, SuppressionReason::Complaint);
    assert_eq!(suppressed(&r).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn forgeries_are_refused() {
    let r = rig().await;
    let (id, provider) = sent_email(&r, &["x@example.org"]).await;
    let body = bounce(&provider, "Permanent", &["x@example.org"]);
    let forged = |e: Result<String, MailError>| match e {
        Err(MailError::Sns(SnsError::Forged(m))) => m,
        other => panic!("expected a forgery, got {other:?}"),
    };

    // Signed by another key.
    forged(handle(&r, &signed(&r, "Notification", &body, OTHER_KEY, json!({}))).await);
    // Signed, then altered.
    let mut altered = signed(
        &r,
        "Notification",
        &bounce(&provider, "Transient", &["x@example.org"]),
        KEY,
        json!({}),
    );
    altered["Message"] = json!(body);
    assert!(forged(handle(&r, &altered).await).contains("signature"));
    // A certificate from a host that is not pinned (never fetched).
    let mut evil = signed(&r, "Notification", &body, KEY, json!({}));
    evil["SigningCertURL"] = json!("https://sns.evil.example.com/cert.pem");
    assert!(forged(handle(&r, &evil).await).contains("trusted SNS host"));
    // Too old.
    let mut old = signed(&r, "Notification", &body, KEY, json!({}));
    old["Timestamp"] = json!("2020-01-01T00:00:00.000Z");
    sign_sns(&mut old, KEY);
    assert!(forged(handle(&r, &old).await).contains("window"));
    // An unknown signature version.
    let mut v3 = signed(&r, "Notification", &body, KEY, json!({}));
    v3["SignatureVersion"] = json!("3");
    forged(handle(&r, &v3).await);
    // Not SNS at all.
    assert!(matches!(
        r.svc.handle_sns(b"{\"hello\": 1}").await,
        Err(MailError::Sns(SnsError::Malformed(_)))
    ));

    assert_eq!(r.svc.get(&id).await.unwrap().status, EmailStatus::Sent);
    assert_eq!(suppressed(&r).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_certificates_and_foreign_topics_are_refused_by_default() {
    let r = rig_with(|_| SnsConfig {
        cert_hosts: vec!["127.0.0.1".into()],
        allow_http: false,
        topics: vec!["arn:aws:sns:us-east-1:123456789012:other".into()],
        ..SnsConfig::default()
    })
    .await;
    let msg = signed(&r, "Notification", "{}", KEY, json!({}));
    let err = handle(&r, &msg).await.unwrap_err();
    assert!(err.to_string().contains("not accepted"), "{err}");
    let r = rig_with(|_| SnsConfig {
        cert_hosts: vec!["127.0.0.1".into()],
        ..SnsConfig::default()
    })
    .await;
    let msg = signed(&r, "Notification", "{}", KEY, json!({}));
    let err = handle(&r, &msg).await.unwrap_err();
    assert!(err.to_string().contains("trusted SNS host"), "{err}");
    assert!(r.server.received_requests().await.unwrap_or_default().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_confirmed() {
    let r = rig().await;
    Mock::given(method("GET"))
        .and(path("/confirm"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<ConfirmSubscriptionResponse/>"))
        .expect(1)
        .mount(&r.server)
        .await;
    let msg = signed(
        &r,
        "SubscriptionConfirmation",
        "You have chosen to subscribe to the topic",
        KEY,
        json!({
            "Token": "tok-123",
            "SubscribeURL": format!("{}/confirm?Action=ConfirmSubscription&Token=tok-123", r.server.uri()),
        }),
    );
    assert_eq!(handle(&r, &msg).await.unwrap(), "confirmed");
    // A confirmation URL on another host is refused even when correctly signed.
    let mut evil = msg.clone();
    evil["MessageId"] = json!("another");
    evil["SubscribeURL"] = json!("http://evil.example.com/confirm");
    sign_sns(&mut evil, KEY);
    assert!(matches!(
        handle(&r, &evil).await,
        Err(MailError::Sns(SnsError::Forged(_)))
    ));
}

/// A certificate URL with a query string (or a fragment, or user info) is refused
/// without any fetch: unauthenticated posts with `...pem?r=<random>` would otherwise
/// each force an outbound fetch and evict the real keys from the cache.
#[tokio::test(flavor = "multi_thread")]
async fn certificate_urls_with_a_query_are_refused_unfetched() {
    let r = rig().await;
    let body = bounce("p-1", "Permanent", &["x@example.org"]);
    let cert = format!("{}/SimpleNotificationService-test.pem", r.server.uri());
    for odd in [
        format!("{cert}?r=1"),
        format!("{cert}#r"),
        cert.replace("http://", "http://user:pw@"),
    ] {
        let mut msg = signed(&r, "Notification", &body, KEY, json!({}));
        msg["SigningCertURL"] = json!(odd);
        match handle(&r, &msg).await {
            Err(MailError::Sns(SnsError::Forged(m))) => assert!(m.contains("SigningCertURL"), "{m}"),
            other => panic!("{odd}: expected a refusal, got {other:?}"),
        }
    }
    assert!(
        r.server.received_requests().await.unwrap_or_default().is_empty(),
        "nothing was fetched"
    );
    // A confirmation URL keeps its query (the token) but not user info or a fragment.
    let mut msg = signed(
        &r,
        "SubscriptionConfirmation",
        "You have chosen to subscribe to the topic",
        KEY,
        json!({
            "Token": "tok-1",
            "SubscribeURL": format!("{}/confirm?Token=tok-1#x", r.server.uri()),
        }),
    );
    sign_sns(&mut msg, KEY);
    assert!(matches!(
        handle(&r, &msg).await,
        Err(MailError::Sns(SnsError::Forged(_)))
    ));
    let asked: Vec<String> = r
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|q| q.url.path().to_owned())
        .collect();
    assert!(!asked.iter().any(|p| p == "/confirm"), "{asked:?}");
}

/// A verifier that takes certificates from the test server over plain HTTP.
fn local_verifier(config: SnsConfig) -> SnsVerifier {
    SnsVerifier::new(SnsConfig {
        cert_hosts: vec!["127.0.0.1".into()],
        allow_http: true,
        ..config
    })
    .unwrap()
}

async fn verify_with(v: &SnsVerifier, cert_url: &str) -> Result<(), SnsError> {
    let msg = sns_message("Notification", TOPIC, "{}", cert_url, json!({}), KEY);
    v.verify(msg.to_string().as_bytes()).await.map(|_| ())
}

async fn fetches(server: &MockServer, path: &str) -> usize {
    let got = server.received_requests().await.unwrap_or_default();
    got.iter().filter(|r| r.url.path() == path).count()
}

#[tokio::test]
async fn the_s3_host_of_a_bucket_named_sns_is_no_certificate_host() {
    let v = SnsVerifier::new(SnsConfig::default()).unwrap();
    for url in [
        "https://sns.s3.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.s3-external-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.s3-website-us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    ] {
        match verify_with(&v, url).await {
            Err(SnsError::Forged(m)) => assert!(m.contains("trusted SNS host"), "{url}: {m}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_certificate_cache_is_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(r"^/c\d+\.pem$"))
        .respond_with(ResponseTemplate::new(200).set_body_string(CERT))
        .mount(&server)
        .await;
    let v = local_verifier(SnsConfig::default());
    let size = SnsConfig::default().cert_cache_size;
    // One certificate URL more than the cache holds (query strings and paths make as
    // many as a sender likes): the least recently used one is dropped.
    for i in 0..=size {
        verify_with(&v, &format!("{}/c{i}.pem", server.uri())).await.unwrap();
    }
    verify_with(&v, &format!("{}/c{size}.pem", server.uri())).await.unwrap();
    assert_eq!(
        fetches(&server, &format!("/c{size}.pem")).await,
        1,
        "a recent key is cached"
    );
    verify_with(&v, &format!("{}/c0.pem", server.uri())).await.unwrap();
    assert_eq!(fetches(&server, "/c0.pem").await, 2, "the oldest key was evicted");
}

#[tokio::test]
async fn cached_keys_expire() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(CERT))
        .mount(&server)
        .await;
    let cert = format!("{}/SimpleNotificationService-test.pem", server.uri());
    let kept = local_verifier(SnsConfig::default());
    let expiring = local_verifier(SnsConfig {
        cert_cache_ttl: Duration::ZERO,
        ..SnsConfig::default()
    });
    for _ in 0..2 {
        verify_with(&kept, &cert).await.unwrap();
    }
    assert_eq!(fetches(&server, "/SimpleNotificationService-test.pem").await, 1);
    for _ in 0..2 {
        verify_with(&expiring, &cert).await.unwrap();
    }
    assert_eq!(fetches(&server, "/SimpleNotificationService-test.pem").await, 3);
}

#[tokio::test]
async fn certificate_downloads_are_bounded_in_size_and_time() {
    // Too big: a valid certificate followed by padding.
    let server = MockServer::start().await;
    let padded = format!("{CERT}\n{}\n", "x".repeat(mailer::sns::MAX_CERT_BYTES));
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(padded))
        .mount(&server)
        .await;
    let v = local_verifier(SnsConfig::default());
    match verify_with(&v, &format!("{}/big.pem", server.uri())).await {
        Err(SnsError::Unavailable(m)) => assert!(m.contains("at most"), "{m}"),
        other => panic!("a certificate over the size limit: {other:?}"),
    }

    // Too slow: the answer starts, then the body never comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n-----BEGIN CERTIFICATE-----\n")
                    .await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop(socket);
            });
        }
    });
    let slow = format!("http://127.0.0.1:{port}/slow.pem");
    let outcome = tokio::time::timeout(mailer::sns::FETCH_TIMEOUT * 3, verify_with(&v, &slow))
        .await
        .expect("the download was never cut off");
    match outcome {
        Err(SnsError::Unavailable(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("a stalled download: {other:?}"),
    }
}
