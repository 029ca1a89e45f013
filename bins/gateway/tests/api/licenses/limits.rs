//! Licence-holder rate limits: per address, per key, behind trusted and untrusted proxies.

use super::*;

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
        assert_eq!(
            post(&app, "/api/v1/licenses/validate", json!({"key": key}))
                .await
                .status(),
            200
        );
    }
    let res = post(&app, "/api/v1/licenses/validate", json!({"key": key.to_lowercase()})).await;
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_problem(res, 429, "rate_limited").await;
    // Another key from the same address: one more, then the address is out too.
    let other = license_core::key::LicenseKey::generate().unwrap();
    assert_eq!(
        post(&app, "/api/v1/licenses/validate", json!({"key": other.as_str()}))
            .await
            .status(),
        200
    );
    let res = post(
        &app,
        "/api/v1/licenses/activate",
        json!({"key": other.as_str(), "fingerprint": "f"}),
    )
    .await;
    assert_problem(res, 429, "rate_limited").await;
    // Admin routes are not holder calls.
    let res = app
        .client
        .get(app.url("/api/v1/licenses"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
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
        let send = |key: Option<&str>| {
            let mut req = app.client.request(method.clone(), app.url(&path));
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            req.send()
        };
        assert_problem(send(None).await.unwrap(), 401, "missing_credentials").await;
        assert_problem(send(Some(&other)).await.unwrap(), 403, "insufficient_scope").await;
        if needs_admin {
            assert_problem(send(Some(&reader)).await.unwrap(), 403, "insufficient_scope").await;
        }
        let res = send(Some(&admin)).await.unwrap();
        assert_eq!(res.status().as_u16(), ok, "{method} {path}");
        if !needs_admin {
            assert_eq!(
                send(Some(&reader)).await.unwrap().status().as_u16(),
                ok,
                "{method} {path} with licenses:read"
            );
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
    let validate = |client: &'static str| {
        let key = license_core::key::LicenseKey::generate().unwrap();
        app.client
            .post(app.url("/api/v1/licenses/validate"))
            .header("x-forwarded-for", format!("203.0.113.50, {client}"))
            .json(&json!({"key": key.as_str()}))
            .send()
    };
    assert_eq!(validate("198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(validate("198.51.100.1").await.unwrap().status(), 200);
    assert_problem(validate("198.51.100.1").await.unwrap(), 429, "rate_limited").await;
    assert_eq!(
        validate("198.51.100.2").await.unwrap().status(),
        200,
        "another client behind the same proxy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_peer_cannot_dodge_its_limit_with_forwarded_headers() {
    let app = TestApp::with_vars(&[("LICENSE_RATE_LIMIT_PER_MINUTE", "2")], None).await;
    for (i, expected) in [(1, 200), (2, 200), (3, 429)] {
        let key = license_core::key::LicenseKey::generate().unwrap();
        let res = app
            .client
            .post(app.url("/api/v1/licenses/validate"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"key": key.as_str()}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), expected);
    }
}
