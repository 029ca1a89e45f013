//! Templates, the dev mailbox, no transport, and pacing.

use diesel_async::RunQueryDsl;
use mailer::model::{TemplateBody, TemplateRef};
use mailer::transport::MailMode;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn templates_render_or_name_the_missing_variable() {
    let db = TestDb::sqlite().await;
    let svc = service(&db, Arc::new(DevMailbox), "app@example.com");
    let body = TemplateBody {
        subject: "Welcome, {{ name }}".into(),
        html: Some("<p>Hi {{ name }}, your code is <b>{{ code }}</b></p>".into()),
        text: Some("Hi {{ name }}, your code is {{ code }}".into()),
        description: None,
    };
    let (t, created) = svc.put_template("welcome", body.clone(), "t").await.unwrap();
    assert!(created);
    assert_eq!(t.variables, ["code", "name"]);
    let (t, created) = svc.put_template("welcome", body, "t").await.unwrap();
    assert!(!created);
    assert_eq!(t.version, 2);
    let mut req = simple(&["a@example.org"]);
    req.subject = None;
    req.text = None;
    req.template = Some(TemplateRef {
        name: "welcome".into(),
        variables: json!({ "name": "<Ann>" }),
    });
    let err = svc.submit(req.clone(), None, "t").await.unwrap_err();
    assert_eq!(err.to_string(), "missing variable `code` (used in the html)");
    req.template.as_mut().unwrap().variables = json!({ "name": "<Ann>", "code": 42 });
    let (accepted, _) = svc.submit(req, None, "t").await.unwrap();
    let raw = String::from_utf8(svc.raw(&accepted.id).await.unwrap()).unwrap();
    let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert_eq!(msg.subject(), Some("Welcome, <Ann>"));
    assert!(
        msg.body_html(0)
            .unwrap()
            .contains("Hi &lt;Ann&gt;, your code is <b>42</b>")
    );
    assert_eq!(msg.body_text(0).unwrap().trim(), "Hi <Ann>, your code is 42");
    let email = svc.get(&accepted.id).await.unwrap();
    assert_eq!(email.template.as_deref(), Some("welcome"));
    svc.delete_template("welcome", "t").await.unwrap();
    assert!(matches!(svc.get_template("welcome").await, Err(MailError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_mailbox_marks_captured_and_keeps_the_raw_message() {
    let db = TestDb::sqlite().await;
    let svc = service(&db, Arc::new(DevMailbox), "app@example.com");
    assert_eq!(svc.mode(), MailMode::Dev);
    let (accepted, _) = svc.submit(simple(&["a@example.org"]), None, "t").await.unwrap();
    let w = worker(&db, &svc);
    drain_until(&w, async || {
        svc.get(&accepted.id).await.unwrap().status == EmailStatus::Captured
    })
    .await;
    let email = svc.get(&accepted.id).await.unwrap();
    assert!(email.provider_ids[0].starts_with("dev-"));
    assert_eq!(email.sent_at, None, "never handed to anyone");
    let kinds: Vec<&str> = email.history.iter().flatten().map(|h| h.kind.as_str()).collect();
    assert_eq!(kinds, ["email.queued", "email.sending", "email.captured"]);
    let raw = svc.raw(&accepted.id).await.unwrap();
    assert_eq!(raw.len() as u64, email.size);
    assert!(String::from_utf8(raw).unwrap().contains("Subject: Hello"));
}

/// With no transport, sends and batches are refused before anything is stored: no
/// message, no job, no event, and the idempotency key stays free.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_transport_nothing_is_stored() {
    for db in TestDb::each().await {
        let svc = MailService::new(
            db.pool.clone(),
            None,
            None,
            MailSettings {
                default_from: Some("app@example.com".into()),
                ..MailSettings::default()
            },
            Arc::new(Notify::new()),
        )
        .unwrap();
        assert_eq!(svc.mode(), MailMode::NotConfigured);
        assert_eq!(svc.transport(), "not_configured");
        let owner = Owner::ApiKey("alice".into());
        let key = Some(Key {
            owner: &owner,
            key: "k1",
            hash: "h1",
        });
        let refused = svc.submit(simple(&["a@example.org"]), key, "t").await;
        assert!(matches!(refused, Err(MailError::NotConfigured)), "{refused:?}");
        let refused = svc.submit_batch(vec![simple(&["a@example.org"])], key, "t").await;
        assert!(matches!(refused, Err(MailError::NotConfigured)), "{refused:?}");
        let message = MailError::NotConfigured.to_string();
        assert!(
            message.contains("SES_SENDER_EMAIL")
                && message.contains("AWS_SES_REGION")
                && message.contains("MAIL_TRANSPORT=dev"),
            "{message}"
        );
        let mut conn = db.pool.get().await.unwrap();
        for table in [
            "email_messages",
            "email_deliveries",
            "jobs",
            "events",
            "idempotency_keys",
        ] {
            assert_eq!(count(&mut conn, table).await, 0, "{table}");
        }
    }
}

async fn count(conn: &mut shared_db::DbConn, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM eb_{table}");
    shared_db::with_conn!(conn, |c| diesel::sql_query(&sql).get_result::<N>(c).await)
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_are_paced_by_the_ses_quota() {
    let Some(ses) = SesTestServer::start().await else {
        return;
    };
    let db = TestDb::sqlite().await;
    let sender = format!("paced-{}@example.com", uuid());
    ses.verify(&sender).await;
    // No configured rate: the pace comes from GetSendQuota (moto: 1 recipient/s).
    let svc = Arc::new(
        MailService::new(
            db.pool.clone(),
            Some(Arc::new(SesMailer::new(&ses.config()))),
            None,
            MailSettings {
                default_from: Some(sender.clone()),
                ..MailSettings::default()
            },
            Arc::new(Notify::new()),
        )
        .unwrap(),
    );
    let thirty = |n: usize| {
        let mut req = simple(&[]);
        req.bcc = (0..30).map(|i| format!("p{n}-{i}@example.org")).collect();
        req
    };
    let (first, _) = svc.submit(thirty(1), None, "t").await.unwrap();
    let (second, _) = svc.submit(thirty(2), None, "t").await.unwrap();
    let w = worker(&db, &svc);
    w.drain().await.unwrap();
    assert_eq!(svc.send_rate(), Some(1.0));
    // A burst of 50 recipients is allowed; the second 30 wait for the bucket to refill.
    let statuses = [
        svc.get(&first.id).await.unwrap().status,
        svc.get(&second.id).await.unwrap().status,
    ];
    assert_eq!(
        statuses.iter().filter(|s| **s == EmailStatus::Sent).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == EmailStatus::Queued).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(ses.sent_from(&sender).await.len(), 1);
    let mut conn = db.pool.get().await.unwrap();
    let pending = shared_db::jobs::counts(&mut conn, SEND_QUEUE).await.unwrap();
    assert_eq!(pending, vec![("queued".to_owned(), 1)], "deferred, not failed");
}
