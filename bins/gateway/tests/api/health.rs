use crate::helpers::{Go, TestApp, assert_problem, get, send_json};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn healthz_and_readyz_answer_on_both_backends() {
    for app in TestApp::each().await {
        let res = app.client.get(app.url("/healthz")).go().await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["status"], "ok");

        let res = app.client.get(app.url("/readyz")).go().await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["status"], "ready");
        assert_eq!(body["database"], app.backend().to_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_kept_or_made() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "client-abc.123")
        .go()
        .await;
    assert_eq!(res.headers()["x-request-id"], "client-abc.123");

    let res = app.client.get(app.url("/healthz")).go().await;
    let made = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&made).unwrap().get_version_num(), 7);

    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .go()
        .await;
    assert_ne!(res.headers()["x-request-id"], "bad id with spaces");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_by_route_pattern_and_report_the_pool() {
    let app = TestApp::spawn().await;
    let (id, _) = app.create_key(&["emails:send"]).await;
    let res = get(&app, &format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(res.status(), 200);
    app.client.get(app.url("/no/such/route")).go().await;

    let text = app.client.get(app.url("/metrics")).go().await.text().await.unwrap();
    assert!(
        text.contains(
            r#"event_bridge_http_requests_total{endpoint="/api/v1/api-keys/{id}",method="GET",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"endpoint="UNMATCHED""#),
        "unknown paths share one label"
    );
    assert!(!text.contains(&id), "ids never become labels");
    assert!(text.contains("event_bridge_http_requests_duration_seconds_bucket"));
    assert!(
        text.contains(r#"event_bridge_db_pool_connections{state="max"} 10"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_gives_503_problems_not_500() {
    let app = TestApp::with_vars(
        &[
            ("DATABASE_URL", "mysql://root@127.0.0.1:9/none"),
            ("DB_MIGRATE_ON_START", "false"),
            ("DB_CONNECT_TIMEOUT_SECS", "1"),
            ("DB_ACQUIRE_TIMEOUT_SECS", "1"),
        ],
        None,
    )
    .await;
    assert_eq!(
        app.client.get(app.url("/healthz")).go().await.status(),
        200,
        "alive even so"
    );
    let res = app.client.get(app.url("/readyz")).go().await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503, "service_unavailable").await;
    let res = app.as_key("eb_anything", Method::GET, "/api/v1/api-keys").go().await;
    assert_problem(res, 503, "service_unavailable").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_the_job_queues_on_both_backends() {
    for app in TestApp::each().await {
        // Jobs on a queue no replica handles stay queued.
        let mut conn = app.state.pool.get().await.unwrap();
        for n in 0..3 {
            let job = shared_db::jobs::NewJob::new("metrics.test", &serde_json::json!({"n": n})).unwrap();
            shared_db::jobs::enqueue(&mut conn, job).await.unwrap();
        }
        drop(conn);
        let scrape = || async { app.client.get(app.url("/metrics")).go().await.text().await.unwrap() };
        let text = scrape().await;
        assert!(
            text.contains(r#"event_bridge_jobs{queue="metrics.test",state="queued"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"event_bridge_jobs_oldest_seconds{queue="metrics.test",state="queued"}"#),
            "{text}"
        );
        // Emptied queues disappear from the gauges (after the one-second refresh floor).
        let mut conn = app.state.pool.get().await.unwrap();
        shared_db::with_conn!(&mut *conn, |c| {
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            diesel::delete(shared_db::schema::jobs::table.filter(shared_db::schema::jobs::queue.eq("metrics.test")))
                .execute(c)
                .await
        })
        .unwrap();
        drop(conn);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let text = scrape().await;
        assert!(!text.contains(r#"queue="metrics.test""#), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_job_attempts_failures_and_delivery_latency() {
    let app = TestApp::spawn().await;
    let res = send_json(
        &app,
        Method::POST,
        "/api/v1/emails",
        &serde_json::json!({"from": "ops@example.com", "to": "ann@example.org", "subject": "Hi", "text": "Hello"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    // A job its handler refuses for good: counted as a failure.
    let mut conn = app.state.pool.get().await.unwrap();
    let job = shared_db::jobs::NewJob::new(mailer::SEND_QUEUE, &serde_json::json!({"nothing": 1})).unwrap();
    shared_db::jobs::enqueue(&mut conn, job).await.unwrap();
    drop(conn);

    let wanted = [
        r#"event_bridge_job_attempts_total{outcome="succeeded",queue="email.send"} 1"#,
        r#"event_bridge_job_attempts_total{outcome="failed",queue="email.send"} 1"#,
        r#"event_bridge_job_delivery_seconds_count{queue="email.send"} 1"#,
        r#"event_bridge_job_attempt_seconds_count{queue="email.send"} 2"#,
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = app.client.get(app.url("/metrics")).go().await.text().await.unwrap();
        if wanted.iter().all(|w| text.contains(w)) {
            assert!(
                text.contains("# TYPE event_bridge_job_delivery_seconds histogram"),
                "{text}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "missing {wanted:?} in\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
