use reqwest::Method;

use crate::helpers::{Go, TestApp, assert_problem, delete, request_with, send_json};

/// Every route of the API key scope, with the status the right key gets.
fn api_key_routes(id: &str) -> Vec<(Method, String, Option<serde_json::Value>, u16)> {
    vec![
        (Method::GET, "/api/v1/api-keys".into(), None, 200),
        (
            Method::POST,
            "/api/v1/api-keys".into(),
            // A scope the right key holds: a key grants only its own scopes.
            Some(serde_json::json!({"name": "n", "scopes": ["api-keys:admin"]})),
            201,
        ),
        (Method::GET, format!("/api/v1/api-keys/{id}"), None, 200),
        (Method::DELETE, format!("/api/v1/api-keys/{id}"), None, 200),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_api_key_route_checks_credentials_and_scope() {
    for app in TestApp::each().await {
        let (_, wrong_scope) = app.create_key(&["emails:send", "licenses:admin", "data:write:*"]).await;
        let (_, right_scope) = app.create_key(&["api-keys:admin"]).await;
        let (revoked_id, revoked) = app.create_key(&["api-keys:admin"]).await;
        let res = delete(&app, &format!("/api/v1/api-keys/{revoked_id}")).await;
        assert_eq!(res.status(), 200);

        // A key the right key could have made: it revokes only those.
        let (target, _) = app.create_key(&["api-keys:admin"]).await;
        for (method, path, body, ok) in api_key_routes(&target) {
            let send = |key: Option<&str>| request_with(&app, method.clone(), &path, key, body.as_ref()).go();
            let res = send(None).await;
            assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"event-bridge\"");
            assert_problem(res, 401, "missing_credentials").await;
            assert_problem(send(Some("eb_not_a_real_key")).await, 401, "invalid_api_key").await;
            assert_problem(send(Some(&revoked)).await, 401, "api_key_revoked").await;
            let body = assert_problem(send(Some(&wrong_scope)).await, 403, "insufficient_scope").await;
            assert!(body["detail"].as_str().unwrap().contains("api-keys:admin"));
            let res = send(Some(&right_scope)).await;
            assert_eq!(res.status().as_u16(), ok, "{method} {path} ({})", app.backend());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_authorization_headers_are_401() {
    let app = TestApp::spawn().await;
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        &app.admin_key,
        "Token abc",
    ] {
        let res = app
            .client
            .get(app.url("/api/v1/api-keys"))
            .header("authorization", header)
            .go()
            .await;
        assert_problem(res, 401, "malformed_credentials").await;
    }
    let res = app
        .client
        .get(app.url("/api/v1/api-keys"))
        .header("authorization", format!("bearer {}", app.admin_key))
        .go()
        .await;
    assert_eq!(res.status(), 200, "the scheme is case-insensitive");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_keys_stop_working() {
    let app = TestApp::spawn().await;
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(3000);
    let res = send_json(
        &app,
        Method::POST,
        "/api/v1/api-keys",
        &serde_json::json!({ "name": "short-lived", "scopes": ["api-keys:admin"], "expires_at": expires }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    let key = body["key"].as_str().unwrap().to_owned();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.as_key(&key, Method::GET, "/api/v1/api-keys").go().await.status(),
        200
    );
    let left = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + std::time::Duration::from_millis(100)).await;
    let res = app.as_key(&key, Method::GET, "/api/v1/api-keys").go().await;
    assert_problem(res, 401, "api_key_expired").await;
    let shown: serde_json::Value = app.get_json(&format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(shown["status"], "expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_from_another_secret_is_refused() {
    // Same database, different SECRET_KEY: digests differ, so the key is unknown.
    let app = TestApp::spawn().await;
    let db_url = app.state.config.database.url.clone();
    let other = TestApp::with_vars(
        &[
            ("DATABASE_URL", &format!("sqlite://{}", db_url.expose_target())),
            ("SECRET_KEY", "another-secret-0123456789abcdef"),
            // The stored licence signing key is sealed under the first secret.
            (
                "LICENSE_SIGNING_KEY",
                "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC",
            ),
        ],
        None,
    )
    .await;
    let res = other.as_key(&app.admin_key, Method::GET, "/api/v1/api-keys").go().await;
    assert_problem(res, 401, "invalid_api_key").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_key_rotation_keeps_api_keys_working() {
    let db = shared_db::testing::TestDb::sqlite().await;
    let url = format!("sqlite://{}", db.url.expose_target());
    // Boxed: three apps' start-up futures would not fit on the test thread's stack.
    let old = Box::pin(TestApp::with_vars(&[("DATABASE_URL", &url)], None)).await;
    let (id, used) = old.create_key(&["events:read"]).await;
    let (_, unused) = old.create_key(&["events:read"]).await;
    let call = |app: &TestApp, key: &str| app.as_key(key, Method::GET, "/api/v1/events?limit=1").go();
    assert_eq!(call(&old, &used).await.status(), 200);

    const NEW: &str = "a-brand-new-secret-key-0123456789";
    let rotated = Box::pin(TestApp::with_vars(
        &[
            ("DATABASE_URL", &url),
            ("SECRET_KEY", NEW),
            ("SECRET_KEY_PREVIOUS", crate::helpers::SECRET),
        ],
        None,
    ))
    .await;
    assert_eq!(call(&rotated, &used).await.status(), 200);
    let mut conn = rotated.state.pool.get().await.unwrap();
    let trail = shared_db::events::for_subject(&mut conn, &format!("api_key:{id}"))
        .await
        .unwrap();
    assert!(trail.iter().any(|e| e.event_type == "api_key.rekeyed"));

    // With the new secret alone: the key used during the rotation works (re-keyed), the
    // one never used does not; the signing key was sealed again, so the app starts.
    let after = Box::pin(TestApp::with_vars(&[("DATABASE_URL", &url), ("SECRET_KEY", NEW)], None)).await;
    assert_eq!(call(&after, &used).await.status(), 200);
    assert_problem(call(&after, &unused).await, 401, "invalid_api_key").await;
    drop(db);
}
