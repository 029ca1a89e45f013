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
