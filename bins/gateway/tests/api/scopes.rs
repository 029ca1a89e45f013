//! The scope matrix, read from the OpenAPI document so that every route added later is
//! covered: each operation behind an API key is called with no key, a revoked key, a
//! key of every scope that does not grant it, and a key of the scope it names. Also:
//! repeated failures from one address are rate limited, and secrets never reach the logs.

use std::collections::BTreeMap;

use gateway::auth::{SCOPES, grants};
use reqwest::Method;

use crate::helpers::{Go, TestApp, assert_problem, delete};

/// Every operation with the scopes its `api_key` security names.
fn operations(app_doc: &utoipa::openapi::OpenApi) -> Vec<(Method, String, Vec<String>)> {
    let mut out = Vec::new();
    for (path, item) in &app_doc.paths.paths {
        let ops = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let security = serde_json::to_value(&op.security).unwrap();
            let scopes: Vec<String> = security
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|req| req.get("api_key"))
                .flat_map(|s| s.as_array().cloned().unwrap_or_default())
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            if !scopes.is_empty() {
                out.push((method, concrete(path), scopes));
            }
        }
    }
    out
}

/// A path with its parameters filled in.
fn concrete(path: &str) -> String {
    let values = BTreeMap::from([
        ("namespace", "client"),
        ("collection", "notes"),
        ("address", "someone@example.org"),
        // Only an id of this shape reaches an upload's routes (others are object keys).
        ("upload_id", "up_0123456789abcdef0123456789abcdef"),
    ]);
    path.split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => values.get(name).copied().unwrap_or("x1"),
            None => seg,
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(app: &TestApp, method: &Method, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = app.client.request(method.clone(), app.url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        req = req.header("content-type", "application/json").body("{}");
    }
    req.go().await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_checks_its_key_and_scope() {
    let app = TestApp::with_vars(&[("AUTH_FAILURES_PER_MINUTE", "100000")], None).await;
    let doc = gateway::app::openapi();
    let ops = operations(&doc);
    assert!(ops.len() >= 50, "only {} operations found", ops.len());

    let (revoked_id, revoked) = app.create_key(&["*"]).await;
    let res = delete(&app, &format!("/api/v1/api-keys/{revoked_id}")).await;
    assert_eq!(res.status(), 200);
    let mut keys = BTreeMap::new();
    for scope in SCOPES {
        keys.insert(*scope, app.create_key(&[scope]).await.1);
    }

    let mut calls = 0;
    for (method, path, needed) in &ops {
        let what = format!("{method} {path}");
        assert_problem(call(&app, method, path, None).await, 401, "missing_credentials").await;
        assert_problem(call(&app, method, path, Some(&revoked)).await, 401, "api_key_revoked").await;
        calls += 2;
        for (scope, key) in &keys {
            let allowed = needed.iter().any(|n| grants(scope, n));
            let res = call(&app, method, path, Some(key)).await;
            calls += 1;
            if allowed {
                assert!(
                    res.status() != 401 && res.status() != 403,
                    "{what} refused `{scope}`, which it names: {}",
                    res.status()
                );
            } else {
                assert_eq!(res.status(), 403, "{what} let `{scope}` in (it needs {needed:?})");
            }
        }
    }
    println!("scope matrix: {} operations, {} calls", ops.len(), calls);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_key_failures_from_one_address_are_rate_limited() {
    let app = TestApp::with_vars(&[("AUTH_FAILURES_PER_MINUTE", "5")], None).await;
    let (_, good) = app.create_key(&["events:read"]).await;
    let get = |key: String| app.as_key(&key, Method::GET, "/api/v1/events").go();
    for i in 0..5 {
        let res = get(format!("eb_wrong{i}")).await;
        assert_problem(res, 401, "invalid_api_key").await;
    }
    let res = get("eb_wrong-again".into()).await;
    assert_problem(res, 401, "invalid_api_key").await;
    // The bucket is empty now: everything from this address waits, even the right key.
    let res = get(good.clone()).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 429, "rate_limited").await;
}

/// A 403 names the narrowest scope that would allow the call (`blobs:write:web` for a
/// write to the `web` namespace, not `blobs:write`) and every scope that would do,
/// whether the key is refused before its body is read or by the handler.
#[tokio::test(flavor = "multi_thread")]
async fn scope_problems_name_the_narrowest_scope_and_what_would_do() {
    let app = TestApp::spawn().await;
    let (_, mailer) = app.create_key(&["emails:send"]).await;
    let (_, ai_writer) = app.create_key(&["blobs:write:ai"]).await;
    let (_, web_reader) = app.create_key(&["blobs:read:web"]).await;
    let cases = [
        (
            Method::PUT,
            "/api/v1/blobs/web/a.txt",
            &mailer,
            "this API key lacks the `blobs:write:web` scope; a key with `blobs:write:web`, `blobs:write:*`, `blobs:write` or `*` may make this call",
        ),
        (
            Method::PUT,
            "/api/v1/blobs/web/a.txt",
            &ai_writer,
            "this API key lacks the `blobs:write:web` scope; a key with `blobs:write:web`, `blobs:write:*`, `blobs:write` or `*` may make this call",
        ),
        (
            Method::GET,
            "/api/v1/blobs/client",
            &web_reader,
            "this API key lacks the `blobs:read:client` scope; a key with `blobs:read:client`, `blobs:read:*`, `blobs:read` or `*` may make this call",
        ),
        (
            Method::GET,
            "/api/v1/data/notes/one",
            &web_reader,
            "this API key lacks the `data:read:notes` scope; a key with `data:read:notes`, `data:read:*`, `data:read` or `*` may make this call",
        ),
        (
            Method::GET,
            "/api/v1/licenses",
            &mailer,
            "this API key lacks the `licenses:read` scope; a key with `licenses:read`, `licenses:admin` or `*` may make this call",
        ),
        (
            Method::GET,
            "/api/v1/api-keys",
            &mailer,
            "this API key lacks the `api-keys:admin` scope; a key with `api-keys:admin` or `*` may make this call",
        ),
    ];
    for (method, path, key, detail) in cases {
        let res = app.as_key(key, method.clone(), path).body("x").go().await;
        let problem = assert_problem(res, 403, "insufficient_scope").await;
        assert_eq!(problem["detail"], detail, "{method} {path}");
    }
}
