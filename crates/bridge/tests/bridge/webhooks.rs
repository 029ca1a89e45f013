//! Webhooks: signed, retried, logged, and kept from internal addresses.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_retried_and_logged() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .mount(&receiver)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&receiver)
            .await;
        let created = r
            .bridge
            .create_webhook(
                NewWebhook {
                    url: format!("{}/hooks/eb", receiver.uri()),
                    event_types: vec!["license.*".into()],
                    description: None,
                },
                "t",
            )
            .await
            .unwrap();
        assert!(created.secret.starts_with("whsec_"));
        r.bridge.dispatch().await.unwrap();
        record(&r, "license.revoked", "api_key:k", json!({"reason": "fraud"})).await;
        record(&r, "slack.posted", "system", json!({})).await;
        assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
        for _ in 0..50 {
            r.worker.drain().await.unwrap();
            if receiver.received_requests().await.unwrap_or_default().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got: Vec<Request> = receiver.received_requests().await.unwrap_or_default();
        assert_eq!(got.len(), 2, "one failure, one success");
        let req = &got[1];
        let header = |n: &str| req.headers.get(n).unwrap().to_str().unwrap().to_owned();
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["type"], "license.revoked");
        assert_eq!(body["data"]["reason"], "fraud");
        assert_eq!(header("webhook-id"), body["id"].as_str().unwrap());
        // Verify the signature independently: HMAC-SHA256(base64-decoded secret, id.ts.body).
        let key = data_encoding::BASE64
            .decode(created.secret.strip_prefix("whsec_").unwrap().as_bytes())
            .unwrap();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let signed = [
            header("webhook-id").as_bytes(),
            b".",
            header("webhook-timestamp").as_bytes(),
            b".",
            &req.body,
        ]
        .concat();
        let sig = header("webhook-signature");
        let tag = data_encoding::BASE64
            .decode(sig.strip_prefix("v1,").unwrap().as_bytes())
            .unwrap();
        ring::hmac::verify(&key, &signed, &tag).unwrap();
        let log = r.bridge.deliveries(&created.webhook.id, &page(10)).await.unwrap().items;
        let codes: Vec<Option<i32>> = log.iter().rev().map(|d| d.status_code).collect();
        assert_eq!(codes, vec![Some(503), Some(204)]);
        assert_eq!(log.iter().rev().map(|d| d.attempt).collect::<Vec<_>>(), vec![1, 2]);

        // The secret is stored sealed, never in plain text.
        let mut conn = r.db.pool.get().await.unwrap();
        #[derive(diesel::QueryableByName)]
        struct Sealed {
            #[diesel(sql_type = diesel::sql_types::Text)]
            secret_sealed: String,
        }
        let rows: Vec<Sealed> = with_conn!(&mut *conn, |c| diesel::sql_query(
            "SELECT secret_sealed FROM eb_webhooks"
        )
        .load(c)
        .await)
        .unwrap();
        assert!(
            !rows[0]
                .secret_sealed
                .contains(created.secret.trim_start_matches("whsec_"))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_webhook_targets_are_refused_unless_allowed() {
    let r = rig(TestDb::sqlite().await, BridgeSettings::default()).await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.0.0.5/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
    ] {
        let err = r
            .bridge
            .create_webhook(
                NewWebhook {
                    url: url.into(),
                    event_types: vec!["*".into()],
                    description: None,
                },
                "t",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, BridgeError::Invalid { field: "url", .. }),
            "{url}: {err:?}"
        );
    }
    // A public-looking name that resolves to loopback is refused at connect time.
    let hook = r
        .bridge
        .create_webhook(
            NewWebhook {
                url: "http://127.0.0.1.nip.io.invalid/x".into(),
                event_types: vec!["*".into()],
                description: None,
            },
            "t",
        )
        .await;
    assert!(hook.is_ok(), "names are checked when connecting, not when registering");
    assert!(!bridge::net::is_global("127.0.0.1".parse().unwrap()));
}

/// A receiver that answers its headers and then trickles (here: never sends) the body
/// cannot hold a delivery worker: the whole exchange runs under the webhook timeout,
/// the attempt fails as retryable and the delivery log says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_stalls_its_body_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = rig(
        TestDb::sqlite().await,
        BridgeSettings {
            webhook_timeout: Duration::from_millis(500),
            ..internal_ok()
        },
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stalled = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            // Headers, one byte of a promised kilobyte, then nothing.
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1024\r\n\r\nx")
                .await;
            held.push(sock);
        }
    });
    let created = r
        .bridge
        .create_webhook(
            NewWebhook {
                url: format!("http://{addr}/hook"),
                event_types: vec!["license.*".into()],
                description: None,
            },
            "t",
        )
        .await
        .unwrap();
    r.bridge.dispatch().await.unwrap();
    record(&r, "license.revoked", "api_key:k", json!({})).await;
    assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
    // Hang guard only: the old code never returns from the body read.
    let mut log = Vec::new();
    for _ in 0..100 {
        let ran = tokio::time::timeout(Duration::from_secs(60), r.worker.drain()).await;
        assert!(ran.is_ok(), "the delivery hung on a stalled answer body");
        log = r.bridge.deliveries(&created.webhook.id, &page(20)).await.unwrap().items;
        if log.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Retried (a fatal error would stop at one attempt), and every attempt says why.
    assert!(log.len() >= 2, "the stalled delivery is retried: {log:?}");
    for d in &log {
        assert_eq!(d.status_code, None, "a half answer is no answer: {d:?}");
        let why = d.error.clone().unwrap_or_default();
        assert!(why.contains("timed out"), "{why}");
    }
    stalled.abort();
}

/// A webhook accepted while internal targets were allowed (or whose row was changed
/// since) is refused again when delivering: nothing reaches the receiver, and the
/// delivery log says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_target_is_refused_again_at_delivery() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&receiver)
            .await;
        let port = receiver.address().port();
        let mut hooks = Vec::new();
        for url in [
            format!("http://127.0.0.1:{port}/registered-while-allowed"),
            format!("http://localhost:{port}/an-internal-name"),
            format!("https://hooks.example.com:{port}/changed-in-the-database"),
        ] {
            let created = r
                .bridge
                .create_webhook(
                    NewWebhook {
                        url,
                        event_types: vec!["license.*".into()],
                        description: None,
                    },
                    "t",
                )
                .await
                .unwrap();
            hooks.push(created.webhook.id);
        }
        let mut conn = r.db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "UPDATE eb_webhooks SET url = ? WHERE id = ?"
        )
        .bind::<diesel::sql_types::Text, _>(format!("http://[::ffff:127.0.0.1]:{port}/changed-in-the-database"))
        .bind::<diesel::sql_types::Text, _>(&hooks[2])
        .execute(c)
        .await)
        .unwrap();
        drop(conn);

        // The same database, now served with WEBHOOK_ALLOW_PRIVATE off.
        let strict = r.another_bridge(BridgeSettings::default());
        let worker = Worker::new(
            r.db.pool.clone(),
            WorkerOptions {
                poll_interval: Duration::from_millis(20),
                backoff: Backoff {
                    base: Duration::from_millis(1),
                    max: Duration::from_millis(1),
                    factor: 1.0,
                    jitter: false,
                },
                ..WorkerOptions::default()
            },
        )
        .register(WEBHOOK_QUEUE, WebhookHandler(strict.clone()));
        strict.dispatch().await.unwrap();
        record(&r, "license.revoked", "api_key:k", json!({})).await;
        assert_eq!(strict.dispatch().await.unwrap(), 3);
        worker.drain().await.unwrap();

        assert!(
            receiver.received_requests().await.unwrap_or_default().is_empty(),
            "a refused target received a delivery"
        );
        for (hook, why) in hooks.iter().zip([
            "127.0.0.1: loopback (127.0.0.0/8)",
            "localhost is an internal name",
            "::ffff:127.0.0.1 (IPv4-mapped) carries 127.0.0.1: loopback (127.0.0.0/8)",
        ]) {
            let log = strict.deliveries(hook, &page(10)).await.unwrap().items;
            assert!(!log.is_empty(), "{why}: no attempt logged");
            for attempt in &log {
                assert_eq!(attempt.status_code, None);
                let error = attempt.error.as_deref().unwrap_or_default();
                assert!(error.contains("refused target") && error.contains(why), "{error}");
            }
        }
    }
}
