use crate::helpers::{TestApp, assert_problem};

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/api/v1/nothing-here")).send().await.unwrap();
    assert_problem(res, 404, "route_not_found").await;

    let res = app.client.put(app.url("/api/v1/api-keys")).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "GET, POST");
    assert_problem(res, 405, "method_not_allowed").await;

    let res = app
        .client
        .post(app.url("/api/v1/api-keys/some-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "DELETE, GET");
    assert_problem(res, 405, "method_not_allowed").await;

    let res = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_problem(res, 405, "method_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_clear_4xx_problems() {
    let app = TestApp::spawn().await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/api-keys"))
            .bearer_auth(&app.admin_key)
            .header("content-type", content_type)
            .body(body)
    };
    let res = post(b"{\"name\": ".to_vec(), "application/json").send().await.unwrap();
    assert_problem(res, 400, "malformed_json").await;

    let res = post(b"not json at all".to_vec(), "application/json")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "malformed_json").await;

    let res = post(br#"{"name":"x","scopes":["*"]}"#.to_vec(), "text/plain")
        .send()
        .await
        .unwrap();
    assert_problem(res, 415, "unsupported_media_type").await;

    let res = post(br#"{"name":7,"scopes":["*"]}"#.to_vec(), "application/json")
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 422, "invalid_body").await;
    assert!(body["detail"].as_str().unwrap().contains("expected a string"));

    let res = post(
        br#"{"name":"x","scopes":["*"],"admin":true}"#.to_vec(),
        "application/json",
    )
    .send()
    .await
    .unwrap();
    let body = assert_problem(res, 422, "invalid_body").await;
    assert!(body["detail"].as_str().unwrap().contains("unknown field"));

    let mut huge = br#"{"name":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    huge.extend(br#"","scopes":["*"]}"#);
    let res = post(huge, "application/json").send().await.unwrap();
    assert_problem(res, 413, "payload_too_large").await;

    let res = post(vec![0xff, 0xfe, 0x00], "application/json").send().await.unwrap();
    assert_problem(res, 400, "malformed_json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_limit_is_configurable() {
    let app = TestApp::with_vars(&[("MAX_JSON_BODY_BYTES", "64")], None).await;
    let res = app
        .client
        .post(app.url("/api/v1/api-keys"))
        .bearer_auth(&app.admin_key)
        .json(&serde_json::json!({ "name": "x".repeat(100), "scopes": ["*"] }))
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 413, "payload_too_large").await;
    assert!(body["detail"].as_str().unwrap().contains("64"));
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_and_others_are_still_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::with_vars(&[("BODY_IDLE_TIMEOUT_SECS", "2")], None).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    // Slowloris: headers that never end, from several connections at once.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // A body announced and never sent.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.admin_key
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    // Meanwhile an ordinary client is served at once.
    let started = std::time::Instant::now();
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // The slow ones are answered (408) or dropped within the server's timeouts.
    for mut s in slow.into_iter().chain([stalled]) {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(15), s.read_to_end(&mut buf)).await;
        let closed = match read {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            Err(_) => false,
        };
        assert!(
            closed,
            "a slow connection was held open: {:?}",
            String::from_utf8_lossy(&buf)
        );
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 400"),
            "{text}"
        );
    }
}
