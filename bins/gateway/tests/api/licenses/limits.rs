//! Licence-holder rate limits: per address, per key, behind trusted and untrusted proxies.

use super::*;
use crate::helpers::request_with;

/// A holder's `validate` of a fresh unknown key, with `X-Forwarded-For: {forwarded}`.
async fn validate_from(app: &TestApp, forwarded: String) -> reqwest::Response {
    let key = license_core::key::LicenseKey::generate().unwrap();
    let req = app
        .client
        .post(app.url("/api/v1/licenses/validate"))
        .header("x-forwarded-for", forwarded);
    req.json(&json!({"key": key.as_str()})).go().await
}

#[tokio::test(flavor = "multi_thread")]
async fn holder_calls_are_rate_limited_per_address_and_per_key() {
    let app = TestApp::with_vars(
        &[
            ("LICENSE_RATE_LIMIT_PER_MINUTE", "5"),
            ("LICENSE_KEY_RATE_LIMIT_PER_MINUTE", "3"),
        ],
        None,
    )
    .await;
    let (_, key) = issue(&app, client_licence()).await;
    for _ in 0..3 {
        assert_eq!(holder(&app, "validate", json!({"key": key})).await.status(), 200);
    }
    let res = holder(&app, "validate", json!({"key": key.to_lowercase()})).await;
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_problem(res, 429, "rate_limited").await;
    // Another key from the same address: one more, then the address is out too.
    let other = license_core::key::LicenseKey::generate().unwrap();
    assert_eq!(
        holder(&app, "validate", json!({"key": other.as_str()})).await.status(),
        200
    );
    let res = holder(&app, "activate", json!({"key": other.as_str(), "fingerprint": "f"})).await;
    assert_problem(res, 429, "rate_limited").await;
    // Admin routes are not holder calls.
    assert_eq!(get(&app, "/api/v1/licenses").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_licence_route_checks_credentials_and_scope() {
    let app = TestApp::spawn().await;
    let (lic, _) = issue(&app, client_licence()).await;
    let id = lic["id"].as_str().unwrap();
    let (_, reader) = app.create_key(&["licenses:read"]).await;
    let (_, admin) = app.create_key(&["licenses:admin"]).await;
    let (_, other) = app.create_key(&["emails:send", "api-keys:admin"]).await;
    // (method, path, body, needs admin, status for the right key)
    let routes: Vec<(Method, String, Option<Value>, bool, u16)> = vec![
        (Method::GET, "/api/v1/licenses".into(), None, false, 200),
        (Method::GET, format!("/api/v1/licenses/{id}"), None, false, 200),
        (Method::GET, format!("/api/v1/licenses/{id}/machines"), None, false, 200),
        (
            Method::POST,
            "/api/v1/licenses".into(),
            Some(client_licence()),
            true,
            201,
        ),
        (
            Method::PATCH,
            format!("/api/v1/licenses/{id}"),
            Some(json!({"name": "n"})),
            true,
            200,
        ),
        (
            Method::POST,
            format!("/api/v1/licenses/{id}/renew"),
            Some(json!({"duration": "1d"})),
            true,
            200,
        ),
        (Method::POST, format!("/api/v1/licenses/{id}/suspend"), None, true, 200),
        (
            Method::POST,
            format!("/api/v1/licenses/{id}/reinstate"),
            None,
            true,
            200,
        ),
        (
            Method::DELETE,
            format!("/api/v1/licenses/{id}/machines/none"),
            None,
            true,
            404,
        ),
        (Method::POST, format!("/api/v1/licenses/{id}/revoke"), None, true, 200),
    ];
    for (method, path, body, needs_admin, ok) in routes {
        let send = |key: Option<&str>| request_with(&app, method.clone(), &path, key, body.as_ref()).go();
        assert_problem(send(None).await, 401, "missing_credentials").await;
        assert_problem(send(Some(&other)).await, 403, "insufficient_scope").await;
        if needs_admin {
            assert_problem(send(Some(&reader)).await, 403, "insufficient_scope").await;
        }
        assert_eq!(send(Some(&admin)).await.status().as_u16(), ok, "{method} {path}");
        if !needs_admin {
            let status = send(Some(&reader)).await.status().as_u16();
            assert_eq!(status, ok, "{method} {path} with licenses:read");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = TestApp::with_vars(
        &[("TRUSTED_PROXIES", "127.0.0.1"), ("LICENSE_RATE_LIMIT_PER_MINUTE", "2")],
        None,
    )
    .await;
    let validate = |client: &'static str| validate_from(&app, format!("203.0.113.50, {client}"));
    assert_eq!(validate("198.51.100.1").await.status(), 200);
    assert_eq!(validate("198.51.100.1").await.status(), 200);
    assert_problem(validate("198.51.100.1").await, 429, "rate_limited").await;
    let status = validate("198.51.100.2").await.status();
    assert_eq!(status, 200, "another client behind the same proxy");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_peer_cannot_dodge_its_limit_with_forwarded_headers() {
    let app = TestApp::with_vars(&[("LICENSE_RATE_LIMIT_PER_MINUTE", "2")], None).await;
    for (i, expected) in [(1, 200), (2, 200), (3, 429)] {
        let res = validate_from(&app, format!("198.51.100.{i}")).await;
        assert_eq!(res.status().as_u16(), expected);
    }
}
