//! Cross-origin requests: the API for the origins in `CORS_ALLOWED_ORIGINS`, and the
//! local backend's signed storage URLs for any origin.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Go, TestApp, assert_problem, send_json};

const APP_ORIGIN: &str = "https://app.example.com";
const OTHER_ORIGIN: &str = "https://elsewhere.example";

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

/// The `Access-Control-*` headers of a response.
fn cors_headers(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

async fn preflight(app: &TestApp, url: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    let mut req = app
        .client
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method);
    if !headers.is_empty() {
        req = req.header("access-control-request-headers", headers);
    }
    req.go().await
}

#[tokio::test(flavor = "multi_thread")]
async fn listed_origins_may_call_the_api_and_others_may_not() {
    let app = TestApp::with_vars(
        &[("CORS_ALLOWED_ORIGINS", &format!("{APP_ORIGIN}, http://localhost:3000"))],
        None,
    )
    .await;
    let url = app.url("/api/v1/blobs/web/hello.txt");
    let res = preflight(&app, &url, APP_ORIGIN, "PUT", "authorization, content-type, if-match").await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(APP_ORIGIN));
    assert_eq!(header(&res, "access-control-max-age").as_deref(), Some("3600"));
    let methods = header(&res, "access-control-allow-methods").unwrap();
    for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{m} in {methods}");
    }
    let allowed = header(&res, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "if-match",
        "if-none-match",
        "range",
        "idempotency-key",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
    let res = preflight(&app, &url, "http://localhost:3000", "GET", "").await;
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );

    // The actual request from a listed origin: allowed, with its headers readable.
    let res = app
        .client
        .put(&url)
        .bearer_auth(&app.admin_key)
        .header("origin", APP_ORIGIN)
        .body("hi")
        .go()
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(APP_ORIGIN));
    let exposed = header(&res, "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in ["etag", "location", "x-request-id", "retry-after", "content-range"] {
        assert!(exposed.contains(h), "{h} in {exposed}");
    }
    assert!(header(&res, "vary").unwrap().to_ascii_lowercase().contains("origin"));
    // Problems too: a page can read why it failed.
    let res = app
        .admin(Method::GET, "/api/v1/blobs/web/missing.txt")
        .header("origin", APP_ORIGIN)
        .go()
        .await;
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(APP_ORIGIN));
    assert_problem(res, 404, "object_not_found").await;

    // Another origin, or a near miss of a listed one: no CORS at all, and its preflight
    // is refused.
    for origin in [
        OTHER_ORIGIN,
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "null",
    ] {
        let res = preflight(&app, &url, origin, "PUT", "authorization").await;
        assert!(cors_headers(&res).is_empty(), "{origin}: {:?}", cors_headers(&res));
        assert_problem(res, 403, "cors_not_allowed").await;
        let res = app
            .client
            .get(&url)
            .bearer_auth(&app.admin_key)
            .header("origin", origin)
            .go()
            .await;
        assert_eq!(res.status(), 200, "served: the browser withholds it from the page");
        assert!(cors_headers(&res).is_empty(), "{origin}: {:?}", cors_headers(&res));
    }
    // A listed origin asking for a header the API does not take is refused too.
    let res = preflight(&app, &url, APP_ORIGIN, "PUT", "x-not-ours").await;
    assert!(cors_headers(&res).is_empty());
    assert_problem(res, 403, "cors_not_allowed").await;
    // A request without Origin (not a browser) carries no CORS headers.
    let res = app.client.get(&url).bearer_auth(&app.admin_key).go().await;
    assert!(cors_headers(&res).is_empty(), "{:?}", cors_headers(&res));
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_no_origin_may_call_the_api() {
    let app = TestApp::spawn().await;
    let url = app.url("/api/v1/api-keys");
    let res = preflight(&app, &url, APP_ORIGIN, "GET", "authorization").await;
    assert!(cors_headers(&res).is_empty(), "{:?}", cors_headers(&res));
    assert_problem(res, 403, "cors_not_allowed").await;
    let res = app
        .client
        .get(&url)
        .bearer_auth(&app.admin_key)
        .header("origin", APP_ORIGIN)
        .go()
        .await;
    assert_eq!(res.status(), 200);
    assert!(cors_headers(&res).is_empty(), "{:?}", cors_headers(&res));
    // An OPTIONS that is not a preflight is a method the route does not take, as before.
    let res = app.client.request(Method::OPTIONS, &url).go().await;
    assert_problem(res, 405, "method_not_allowed").await;
}

async fn presign(app: &TestApp, body: Value) -> Value {
    let res = send_json(app, Method::POST, "/api/v1/blobs/web/presign", &body).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_local_urls_are_open_to_any_origin_and_api_keys_are_not() {
    // No CORS_ALLOWED_ORIGINS: only signed URLs answer browsers.
    let app = TestApp::spawn().await;
    let signed = presign(
        &app,
        json!({"key": "uploads/사진.png", "method": "PUT", "content_type": "image/png", "content_length": 4}),
    )
    .await;
    let put_url = signed["url"].as_str().unwrap().to_owned();
    let res = preflight(&app, &put_url, OTHER_ORIGIN, "PUT", "content-type").await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(OTHER_ORIGIN)
    );
    assert!(header(&res, "access-control-allow-methods").unwrap().contains("PUT"));
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
    // The browser's PUT, with no key: stored, and the ETag is readable.
    let plain = reqwest::Client::new();
    let res = plain
        .put(&put_url)
        .header("origin", OTHER_ORIGIN)
        .header("content-type", "image/png")
        .body(vec![0x89, b'P', b'N', b'G'])
        .go()
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(OTHER_ORIGIN)
    );
    assert!(
        header(&res, "access-control-expose-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("etag")
    );
    // Only for the method it was signed for.
    let res = preflight(&app, &put_url, OTHER_ORIGIN, "DELETE", "").await;
    assert!(cors_headers(&res).is_empty());
    assert_problem(res, 403, "cors_not_allowed").await;
    let res = preflight(&app, &put_url, OTHER_ORIGIN, "GET", "").await;
    assert!(cors_headers(&res).is_empty());

    let signed = presign(&app, json!({"key": "uploads/사진.png", "method": "GET"})).await;
    let get_url = signed["url"].as_str().unwrap().to_owned();
    let res = plain.get(&get_url).header("origin", OTHER_ORIGIN).go().await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(OTHER_ORIGIN)
    );
    let res = plain.head(&get_url).header("origin", OTHER_ORIGIN).go().await;
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(OTHER_ORIGIN)
    );

    // The same object with an API key and no signature: no CORS for another origin; nor
    // with a signature parameter alone, which the handler does not take as a signature
    // (the key authorises it).
    let object = app.url("/api/v1/blobs/web/uploads/%EC%82%AC%EC%A7%84.png");
    for url in [object.clone(), format!("{object}?X-EB-Signature=00")] {
        let res = app
            .client
            .get(&url)
            .bearer_auth(&app.admin_key)
            .header("origin", OTHER_ORIGIN)
            .go()
            .await;
        assert_eq!(res.status(), 200, "{url}");
        assert!(cors_headers(&res).is_empty(), "{url}: {:?}", cors_headers(&res));
        let res = preflight(&app, &url, OTHER_ORIGIN, "GET", "authorization").await;
        assert!(cors_headers(&res).is_empty(), "{url}");
        assert_problem(res, 403, "cors_not_allowed").await;
    }
    // Nor does the key's own write through the signed path's look-alike.
    let res = app
        .client
        .put(&object)
        .bearer_auth(&app.admin_key)
        .header("origin", OTHER_ORIGIN)
        .body("x")
        .go()
        .await;
    assert_eq!(res.status(), 201);
    assert!(cors_headers(&res).is_empty(), "{:?}", cors_headers(&res));
}

#[tokio::test(flavor = "multi_thread")]
async fn local_part_urls_are_open_to_any_origin_for_their_put() {
    // A page sends a multipart upload's parts itself: the part URLs answer its preflight,
    // and the ETag each part answers is readable.
    let app = TestApp::spawn().await;
    let upload: Value = app
        .admin(Method::POST, "/api/v1/blobs/web/uploads")
        .json(&json!({"key": "uploads/big.bin", "size": 6}))
        .go()
        .await
        .json()
        .await
        .unwrap();
    let url = upload["parts"][0]["url"].as_str().unwrap().to_owned();
    let res = preflight(&app, &url, OTHER_ORIGIN, "PUT", "").await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(OTHER_ORIGIN)
    );
    let res = reqwest::Client::new()
        .put(&url)
        .header("origin", OTHER_ORIGIN)
        .body(b"123456".to_vec())
        .go()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(OTHER_ORIGIN)
    );
    assert!(
        header(&res, "access-control-expose-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("etag")
    );
    let res = preflight(&app, &url, OTHER_ORIGIN, "DELETE", "").await;
    assert_problem(res, 403, "cors_not_allowed").await;
}
