//! The outbox against a real SES endpoint (moto in server mode), on SQLite and MariaDB:
//! MIME as received, splitting, suppression, idempotency, retries and permanent failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use mailer::model::{AddSuppression, AttachmentIn, EmailStatus, SendEmail};
use mailer::testing::SesTestServer;
use mailer::transport::{DevMailbox, Mailer, SesConfig, SesMailer};
use mailer::{MailError, MailService, MailSettings, SEND_QUEUE, SendHandler};
use serde_json::json;
use shared_db::idempotency::{Key, Owner};
use shared_db::testing::TestDb;
use shared_db::worker::{Backoff, Worker, WorkerOptions};
use tokio::sync::Notify;

#[path = "outbox/later.rs"]
mod later;

fn worker(db: &TestDb, service: &Arc<MailService>) -> Worker {
    let options = WorkerOptions {
        worker_id: format!("w-{}", uuid()),
        concurrency: 8,
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(30),
        backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(10),
            factor: 1.0,
            jitter: false,
        },
    };
    Worker::new(db.pool.clone(), options).register(SEND_QUEUE, SendHandler(service.clone()))
}

fn uuid() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn service(db: &TestDb, mailer: Arc<dyn Mailer>, from: &str) -> Arc<MailService> {
    Arc::new(
        MailService::new(
            db.pool.clone(),
            Some(mailer),
            None,
            MailSettings {
                default_from: Some(from.into()),
                max_send_rate: Some(10_000.0),
                ..MailSettings::default()
            },
            Arc::new(Notify::new()),
        )
        .unwrap(),
    )
}

fn simple(to: &[&str]) -> SendEmail {
    SendEmail {
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: Some("Hello".into()),
        text: Some("plain".into()),
        ..SendEmail::default()
    }
}

/// Drains the queue until `done` or a deadline (retries are due after 10 ms).
async fn drain_until(w: &Worker, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        w.drain().await.unwrap();
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the outbox did not finish");
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_the_full_mime_through_ses() {
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    for db in TestDb::each().await {
        let sender = format!("news-{}@example.com", uuid());
        ses.verify(&sender).await;
        let svc = service(
            &db,
            Arc::new(SesMailer::new(&ses.config())),
            &format!("Newsroom <{sender}>"),
        );
        let png = vec![0x89, b'P', b'N', b'G', 1, 2, 3];
        let req = SendEmail {
            to: vec!["홍길동 <hong@bücher.example>".into(), "b@example.org".into()],
            cc: vec!["c@example.org".into()],
            bcc: vec!["hidden@example.org".into()],
            reply_to: vec!["support@example.com".into()],
            subject: Some("Quarterly report — Q3".into()),
            text: Some("See the report.".into()),
            html: Some("<p>See the report.</p><img src=\"cid:logo\">".into()),
            attachments: vec![
                AttachmentIn {
                    filename: "report.pdf".into(),
                    content_type: None,
                    content_base64: data_encoding::BASE64.encode(b"%PDF-1.4 fake"),
                    content_id: None,
                },
                AttachmentIn {
                    filename: "logo.png".into(),
                    content_type: Some("image/png".into()),
                    content_base64: data_encoding::BASE64.encode(&png),
                    content_id: Some("logo".into()),
                },
            ],
            tags: BTreeMap::from([("campaign".into(), "q3".into())]),
            headers: BTreeMap::from([("List-Unsubscribe".into(), "<mailto:unsub@example.com>".into())]),
            ..SendEmail::default()
        };
        let (accepted, replay) = svc.submit(req, None, "test").await.unwrap();
        assert!(!replay);
        assert_eq!(accepted.status, EmailStatus::Queued);
        let w = worker(&db, &svc);
        drain_until(&w, async || {
            svc.get(&accepted.id).await.unwrap().status == EmailStatus::Sent
        })
        .await;

        let sent = ses.sent_from(&sender).await;
        assert_eq!(sent.len(), 1, "{sent:?}");
        for r in [
            "hong@xn--bcher-kva.example",
            "b@example.org",
            "c@example.org",
            "hidden@example.org",
        ] {
            assert!(
                sent[0].destinations.iter().any(|d| d == r),
                "{r} missing from {:?}",
                sent[0].destinations
            );
        }
        let msg = MessageParser::default().parse(sent[0].raw_data.as_bytes()).unwrap();
        assert_eq!(msg.subject(), Some("Quarterly report — Q3"));
        let from = msg.from().unwrap().first().unwrap();
        assert_eq!((from.name(), from.address()), (Some("Newsroom"), Some(sender.as_str())));
        assert_eq!(msg.to().unwrap().first().unwrap().name(), Some("홍길동"));
        assert!(msg.bcc().is_none(), "Bcc must not be in the headers");
        assert!(!sent[0].raw_data.contains("hidden@example.org"));
        assert_eq!(
            msg.reply_to().unwrap().first().unwrap().address(),
            Some("support@example.com")
        );
        assert_eq!(
            msg.header_raw("List-Unsubscribe").map(str::trim),
            Some("<mailto:unsub@example.com>")
        );
        assert_eq!(msg.body_text(0).unwrap().trim(), "See the report.");
        assert!(msg.body_html(0).unwrap().contains("cid:logo"));
        let files: Vec<_> = msg.attachments().collect();
        assert_eq!(files.len(), 2);
        let pdf = files
            .iter()
            .find(|a| a.attachment_name() == Some("report.pdf"))
            .unwrap();
        assert_eq!(pdf.contents(), b"%PDF-1.4 fake");
        assert_eq!(pdf.content_type().unwrap().subtype(), Some("pdf"));
        let logo = files.iter().find(|a| a.content_id() == Some("logo")).unwrap();
        assert_eq!(logo.contents(), png.as_slice());
        assert!(sent[0].raw_data.contains("multipart/related"));

        let email = svc.get(&accepted.id).await.unwrap();
        assert_eq!(email.provider_ids, vec![sent[0].id.clone()]);
        assert!(email.sent_at.is_some());
        assert_eq!(email.attachments.len(), 2);
        assert_eq!(email.tags["campaign"], "q3");
        let kinds: Vec<_> = email.history.unwrap().into_iter().map(|h| h.kind).collect();
        assert_eq!(kinds, ["email.queued", "email.sending", "email.sent"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn splits_more_than_fifty_recipients() {
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    for db in TestDb::each().await {
        let sender = format!("bulk-{}@example.com", uuid());
        ses.verify(&sender).await;
        let svc = service(&db, Arc::new(SesMailer::new(&ses.config())), &sender);
        // All in Bcc: moto (unlike SES) counts header recipients against the 50 as well.
        let mut req = simple(&[]);
        req.bcc = (0..120).map(|i| format!("r{i}@example.org")).collect();
        let (accepted, _) = svc.submit(req, None, "test").await.unwrap();
        let w = worker(&db, &svc);
        drain_until(&w, async || {
            svc.get(&accepted.id).await.unwrap().status == EmailStatus::Sent
        })
        .await;
        let sent = ses.sent_from(&sender).await;
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|m| m.destinations.len() <= 50));
        let mut all: Vec<String> = sent.iter().flat_map(|m| m.destinations.clone()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 120);
        assert_eq!(svc.get(&accepted.id).await.unwrap().provider_ids.len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn suppressed_recipients_are_dropped_and_shown() {
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    for db in TestDb::each().await {
        let sender = format!("s-{}@example.com", uuid());
        ses.verify(&sender).await;
        let svc = service(&db, Arc::new(SesMailer::new(&ses.config())), &sender);
        let (s, added) = svc
            .add_suppression(
                AddSuppression {
                    address: "Gone@Example.org".into(),
                    detail: None,
                },
                "test",
            )
            .await
            .unwrap();
        assert!(added);
        assert_eq!(s.address, "gone@example.org");
        let (partly, _) = svc
            .submit(simple(&["gone@example.org", "here@example.org"]), None, "t")
            .await
            .unwrap();
        let (wholly, _) = svc.submit(simple(&["GONE@example.org"]), None, "t").await.unwrap();
        let w = worker(&db, &svc);
        drain_until(&w, async || {
            svc.get(&wholly.id).await.unwrap().status == EmailStatus::Suppressed
                && svc.get(&partly.id).await.unwrap().status == EmailStatus::Sent
        })
        .await;
        let sent = ses.sent_from(&sender).await;
        assert_eq!(sent.len(), 1);
        assert!(
            !sent[0].destinations.contains(&"gone@example.org".to_owned()) || {
                // moto re-adds header recipients; the envelope we sent is what matters
                sent[0].destinations.iter().filter(|d| *d == "gone@example.org").count() == 1
            }
        );
        let partly = svc.get(&partly.id).await.unwrap();
        assert_eq!(partly.suppressed, vec!["gone@example.org".to_owned()]);
        let sent_event = partly
            .history
            .unwrap()
            .into_iter()
            .find(|h| h.kind == "email.sent")
            .unwrap();
        assert_eq!(sent_event.data["recipients"], json!(["here@example.org"]));
        assert!(svc.get(&wholly.id).await.unwrap().provider_ids.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_while_ses_is_unreachable_then_sends() {
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    for db in TestDb::each().await {
        let sender = format!("r-{}@example.com", uuid());
        ses.verify(&sender).await;
        let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let down = SesMailer::new(&SesConfig {
            endpoint: Some(format!("http://127.0.0.1:{dead_port}")),
            ..ses.config()
        });
        let offline = service(&db, Arc::new(down), &sender);
        let (accepted, _) = offline.submit(simple(&["a@example.org"]), None, "t").await.unwrap();
        let w = worker(&db, &offline);
        w.drain().await.unwrap();
        let email = offline.get(&accepted.id).await.unwrap();
        assert!(matches!(email.status, EmailStatus::Queued | EmailStatus::Sending));
        assert!(email.error.unwrap().contains("could not reach SES"));
        assert!(ses.sent_from(&sender).await.is_empty());

        // SES is back (a new process with the same database).
        let online = service(&db, Arc::new(SesMailer::new(&ses.config())), &sender);
        let w = worker(&db, &online);
        drain_until(&w, async || {
            online.get(&accepted.id).await.unwrap().status == EmailStatus::Sent
        })
        .await;
        assert_eq!(ses.sent_from(&sender).await.len(), 1);
    }
}

const THROTTLED: &str = "<ErrorResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Maximum sending rate exceeded.</Message></Error><RequestId>r-1</RequestId></ErrorResponse>";
const UNAVAILABLE: &str = "<ErrorResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\"><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>Service is unavailable.</Message></Error><RequestId>r-2</RequestId></ErrorResponse>";

/// SES throttling, failing with a 503, never answering, refusing connections and cutting
/// them mid-request (a fault proxy in front of moto): each is a retry, not a failure, and
/// nothing reaches SES; when SES answers again the message is sent exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn ses_throttling_failing_or_slow_is_retried_then_sent_once() {
    use shared_db::testing::fault::{Fault, FaultProxy};
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    let proxy = FaultProxy::start(ses.url()).await;
    for db in TestDb::each().await {
        let sender = format!("f-{}@example.com", uuid());
        ses.verify(&sender).await;
        let mailer = SesMailer::new(&SesConfig {
            endpoint: Some(proxy.url()),
            timeout: Duration::from_secs(1),
            ..ses.config()
        });
        let svc = service(&db, Arc::new(mailer), &sender);
        let (accepted, _) = svc.submit(simple(&["a@example.org"]), None, "t").await.unwrap();
        let w = worker(&db, &svc);
        for (fault, reason) in [
            (
                Fault::http(400, "text/xml", THROTTLED),
                "Throttling: Maximum sending rate exceeded.",
            ),
            (Fault::http(503, "text/xml", UNAVAILABLE), "ServiceUnavailable"),
            (Fault::Stall, "timed out talking to SES"),
            (Fault::Refuse, "could not reach SES"),
            (Fault::CutAfter(200), "could not reach SES"),
        ] {
            proxy.set(fault.clone());
            let before = proxy.accepted();
            // The retry is due 10 ms after the previous failure.
            for _ in 0..100 {
                w.drain().await.unwrap();
                if proxy.accepted() > before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(proxy.accepted() > before, "{fault:?}: the send went through the proxy");
            let email = svc.get(&accepted.id).await.unwrap();
            assert!(
                matches!(email.status, EmailStatus::Queued | EmailStatus::Sending),
                "{fault:?}: {email:?}"
            );
            let error = email.error.unwrap_or_default();
            assert!(error.contains(reason), "{fault:?}: {error}");
        }
        assert!(ses.sent_from(&sender).await.is_empty());

        proxy.set(Fault::Pass);
        drain_until(&w, async || {
            svc.get(&accepted.id).await.unwrap().status == EmailStatus::Sent
        })
        .await;
        assert_eq!(ses.sent_from(&sender).await.len(), 1);
        let history = svc.get(&accepted.id).await.unwrap().history.unwrap();
        assert!(history.iter().all(|h| h.kind != "email.failed"), "{history:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_message_fails_at_once_with_the_reason() {
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    for db in TestDb::each().await {
        let unverified = format!("nobody-{}@example.com", uuid());
        let svc = service(&db, Arc::new(SesMailer::new(&ses.config())), &unverified);
        let (accepted, _) = svc.submit(simple(&["a@example.org"]), None, "t").await.unwrap();
        let w = worker(&db, &svc);
        drain_until(&w, async || {
            svc.get(&accepted.id).await.unwrap().status == EmailStatus::Failed
        })
        .await;
        let email = svc.get(&accepted.id).await.unwrap();
        assert!(
            email.error.as_deref().unwrap().starts_with("MessageRejected"),
            "{email:?}"
        );
        let failed = email
            .history
            .unwrap()
            .into_iter()
            .find(|h| h.kind == "email.failed")
            .unwrap();
        assert!(failed.data["reason"].as_str().unwrap().contains("MessageRejected"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_replay_or_conflict() {
    for db in TestDb::each().await {
        let svc = service(&db, Arc::new(DevMailbox), "app@example.com");
        let (alice, bob) = (Owner::ApiKey("alice".into()), Owner::ApiKey("bob".into()));
        let k = |owner, key, hash| Some(Key { owner, key, hash });
        let (first, replay) = svc
            .submit(simple(&["a@example.org"]), k(&alice, "k1", "h1"), "t")
            .await
            .unwrap();
        assert!(!replay);
        let (again, replay) = svc
            .submit(simple(&["a@example.org"]), k(&alice, "k1", "h1"), "t")
            .await
            .unwrap();
        assert!(replay);
        assert_eq!(again.id, first.id);
        // Another owner's key of the same name is another key: its own message, and
        // its own replay.
        let (theirs, replay) = svc
            .submit(simple(&["a@example.org"]), k(&bob, "k1", "h1"), "t")
            .await
            .unwrap();
        assert!(!replay);
        assert_ne!(theirs.id, first.id);
        let (again, replay) = svc
            .submit(simple(&["a@example.org"]), k(&bob, "k1", "h1"), "t")
            .await
            .unwrap();
        assert!(replay);
        assert_eq!(again.id, theirs.id);
        let err = svc
            .submit(simple(&["b@example.org"]), k(&alice, "k1", "h2"), "t")
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            MailError::Conflict {
                code: "idempotency_conflict",
                ..
            }
        ));
        // Concurrent first requests with one key: one message.
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                let alice = Owner::ApiKey("alice".into());
                svc.submit(
                    simple(&["c@example.org"]),
                    Some(Key {
                        owner: &alice,
                        key: "k2",
                        hash: "h",
                    }),
                    "t",
                )
                .await
                .unwrap()
                .0
                .id
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
        // The losers' transactions had written their message, job and `email.queued`
        // event before the key's unique index refused them: all rolled back together.
        let mut conn = db.pool.get().await.unwrap();
        let queued = shared_db::events::list(
            &mut conn,
            &shared_db::events::EventFilter {
                event_type: Some("email.queued".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            queued.len(),
            3,
            "one event per stored message (alice's two, bob's one), none for the refused ones"
        );
        let stored = svc
            .list(&mailer::model::EmailFilter::default())
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(stored, 3);
        let jobs = shared_db::jobs::counts(&mut conn, SEND_QUEUE).await.unwrap();
        assert_eq!(jobs, vec![("queued".to_owned(), 3)]);
    }
}
