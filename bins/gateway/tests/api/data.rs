use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Go, TestApp, assert_problem, get, item_strs};

/// Sends `req` with `headers` added.
async fn with_headers(mut req: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> reqwest::Response {
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.go().await
}

async fn put(app: &TestApp, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    with_headers(app.admin(Method::PUT, path).json(&body), headers).await
}

/// A merge patch (`application/merge-patch+json`).
fn merge_patch(app: &TestApp, path: &str, body: Value) -> reqwest::RequestBuilder {
    let req = app.admin(Method::PATCH, path);
    req.header("content-type", "application/merge-patch+json")
        .body(body.to_string())
}

async fn patch(app: &TestApp, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    with_headers(merge_patch(app, path, body), headers).await
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_with_versions_conditions_and_merge_patch() {
    for app in TestApp::each().await {
        let doc = "/api/v1/data/orders/o-1";
        let res = put(
            &app,
            doc,
            json!({"status": "open", "total": 10, "tags": ["a"]}),
            &[("if-none-match", "*")],
        )
        .await;
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers()["etag"], "\"1\"");
        let res = put(&app, doc, json!({"x": 1}), &[("if-none-match", "*")]).await;
        assert_problem(res, 412, "precondition_failed").await;

        let res = patch(
            &app,
            doc,
            json!({"status": "paid", "tags": null, "paid_at": "2026-11-28"}),
            &[("if-match", "\"1\"")],
        )
        .await;
        assert_eq!(res.status(), 200, "{}", app.backend());
        assert_eq!(res.headers()["etag"], "\"2\"");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["data"],
            json!({"status": "paid", "total": 10, "paid_at": "2026-11-28"})
        );
        // A stale If-Match loses, and says which version is current.
        let res = put(&app, doc, json!({"lost": true}), &[("if-match", "\"1\"")]).await;
        assert_eq!(res.headers()["etag"], "\"2\"");
        assert_problem(res, 412, "precondition_failed").await;

        let current = get(&app, doc).await;
        assert_eq!(current.headers()["etag"], "\"2\"");
        let again = with_headers(app.admin(Method::GET, doc), &[("if-none-match", "\"2\"")]).await;
        assert_eq!(again.status(), 304);

        let res = with_headers(app.admin(Method::DELETE, doc), &[("if-match", "\"1\"")]).await;
        assert_problem(res, 412, "precondition_failed").await;
        let res = with_headers(app.admin(Method::DELETE, doc), &[("if-match", "\"2\"")]).await;
        assert_eq!(res.status(), 204);
        let res = get(&app, doc).await;
        assert_problem(res, 404, "document_not_found").await;
        let res = patch(&app, doc, json!({"a": 1}), &[]).await;
        assert_problem(res, 404, "document_not_found").await;

        let trail: Value = app
            .get_json("/api/v1/events?subject=document:orders/o-1&order=asc")
            .await;
        assert_eq!(
            item_strs(&trail, "type"),
            ["document.written", "document.written", "document.deleted"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_never_lose_an_update() {
    for app in TestApp::each().await {
        let doc = "/api/v1/data/counters/c-1";
        assert_eq!(put(&app, doc, json!({}), &[]).await.status(), 201);
        // 16 concurrent patches, each adding its own field: all survive.
        let mut tasks = Vec::new();
        for i in 0..16 {
            tasks.push(tokio::spawn(merge_patch(&app, doc, json!({ format!("f{i}"): i })).go()));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().status(), 200);
        }
        let body: Value = app.get_json(doc).await;
        assert_eq!(body["data"].as_object().unwrap().len(), 16, "{}: {body}", app.backend());
        assert_eq!(body["version"], 17);
        // 8 concurrent replaces with the same If-Match: exactly one wins.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let req = app.admin(Method::PUT, doc).header("if-match", "\"17\"");
            tasks.push(tokio::spawn(req.json(&json!({ "winner": i })).go()));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap().status().as_u16() {
                200 => won += 1,
                412 => {}
                other => panic!("{other}"),
            }
        }
        assert_eq!(won, 1, "{}", app.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schemas_scopes_listing_and_limits() {
    let app = TestApp::with_vars(&[("MAX_DOCUMENT_BYTES", "200")], None).await;
    let schema = json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}});
    let res = put(&app, "/api/v1/data/people/_schema", schema.clone(), &[]).await;
    assert_eq!(res.status(), 200);
    let got: Value = app.get_json("/api/v1/data/people/_schema").await;
    assert_eq!(got, schema);
    let res = put(&app, "/api/v1/data/people/p1", json!({"age": -3}), &[]).await;
    let problem = assert_problem(res, 422, "schema_violation").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("/age") && detail.contains("name"), "{detail}");
    for (id, name, team) in [("p1", "Kim", "web"), ("p2", "Lee", "ai"), ("q1", "Park", "web")] {
        let res = put(
            &app,
            &format!("/api/v1/data/people/{id}"),
            json!({"name": name, "team": team}),
            &[],
        )
        .await;
        assert_eq!(res.status(), 201, "{id}");
    }
    let res = patch(&app, "/api/v1/data/people/p1", json!({"name": 7}), &[]).await;
    assert_problem(res, 422, "schema_violation").await;
    let res = put(&app, "/api/v1/data/people/_schema", json!({"type": "nonsense"}), &[]).await;
    assert_problem(res, 422, "invalid_schema").await;

    let web = app.get_json("/api/v1/data/people?team=web").await;
    assert_eq!(item_strs(&web, "id"), ["p1", "q1"]);
    let p = app.get_json("/api/v1/data/people?prefix=p&limit=1").await;
    assert_eq!(p["items"][0]["id"], "p1");
    let cursor = p["next_cursor"].as_str().unwrap();
    let next = app
        .get_json(&format!("/api/v1/data/people?prefix=p&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(next["items"][0]["id"], "p2");

    let res = put(&app, "/api/v1/data/people/big", json!({"name": "x".repeat(300)}), &[]).await;
    assert_problem(res, 413, "payload_too_large").await;
    // Small patches cannot grow a document past the limit either.
    for i in 0..3 {
        let res = patch(
            &app,
            "/api/v1/data/people/p2",
            json!({ format!("note{i}"): "y".repeat(60) }),
            &[],
        )
        .await;
        if i == 2 {
            assert_problem(res, 413, "payload_too_large").await;
        } else {
            assert_eq!(res.status(), 200);
        }
    }
    let res = put(&app, "/api/v1/data/Bad!/x", json!({}), &[]).await;
    assert_problem(res, 400, "invalid_collection").await;
    let res = put(&app, "/api/v1/data/people/_private", json!({}), &[]).await;
    assert!(res.status().is_client_error());
    let p9 = || app.admin(Method::PUT, "/api/v1/data/people/p9");
    assert_problem(p9().body("{}").go().await, 415, "unsupported_media_type").await;
    let res = p9().header("content-type", "application/json").body("{oops").go().await;
    assert_problem(res, 400, "malformed_json").await;

    let (_, reader) = app.create_key(&["data:read:people"]).await;
    let (_, writer) = app.create_key(&["data:write:people"]).await;
    let (_, other) = app.create_key(&["data:read:orders"]).await;
    let get = |k: &str| app.as_key(k, Method::GET, "/api/v1/data/people/p1").go();
    assert_eq!(get(&reader).await.status(), 200);
    assert_problem(get(&other).await, 403, "insufficient_scope").await;
    assert_problem(get(&writer).await, 403, "insufficient_scope").await;
    let put_p3 = |k: &str| {
        app.as_key(k, Method::PUT, "/api/v1/data/people/p3")
            .json(&json!({"name": "n"}))
            .go()
    };
    assert_problem(put_p3(&reader).await, 403, "insufficient_scope").await;
    assert_eq!(put_p3(&writer).await.status(), 201);
}

/// A schema pattern that needs a backtracking engine (look-behind, backreferences) is
/// refused with a 422 naming it: with one, writing a 31 KB document took 34 s inside
/// the write transaction, stalling every other write.
#[tokio::test(flavor = "multi_thread")]
async fn schema_patterns_that_need_backtracking_are_refused() {
    for app in TestApp::each().await {
        let attack = r"^(\w+\s?)+(?<=z)$";
        let schemas = [
            json!({"type": "object", "properties": {"name": {"type": "string", "pattern": attack}}}),
            json!({"type": "object", "patternProperties": {attack: {"type": "string"}}}),
            json!({"type": "object", "patternProperties": {attack: true}, "unevaluatedProperties": false}),
            json!({"type": "array", "items": {"anyOf": [{"pattern": attack}]}}),
        ];
        let set_schema = |schema: Value| put(&app, "/api/v1/data/slow/_schema", schema, &[]);
        for schema in schemas {
            let res = set_schema(schema.clone()).await;
            let problem = assert_problem(res, 422, "invalid_schema").await;
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains(r#""^(\\w+\\s?)+(?<=z)$""#), "{schema}: {detail}");
        }
        let res = set_schema(json!({"properties": {"a": {"pattern": r"(x)\1"}}})).await;
        let problem = assert_problem(res, 422, "invalid_schema").await;
        assert!(problem["detail"].as_str().unwrap().contains(r#""(x)\\1""#), "{problem}");
        // A pattern too large to compile within the limits is refused too.
        let res = set_schema(json!({"properties": {"a": {"pattern": r"\w{1000}\w{1000}"}}})).await;
        assert_problem(res, 422, "invalid_schema").await;
        // So is a schema with more patterns than the limit.
        let many: serde_json::Map<String, Value> = (0..300)
            .map(|i| (format!("f{i}"), json!({"pattern": format!("^a{i}$")})))
            .collect();
        let res = set_schema(json!({ "properties": many })).await;
        let problem = assert_problem(res, 422, "invalid_schema").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("256 patterns"),
            "{problem}"
        );
        // Nothing was stored; instances (`const`, `enum`) may hold such strings.
        let res = get(&app, "/api/v1/data/slow/_schema").await;
        assert_problem(res, 404, "schema_not_found").await;
        let res =
            set_schema(json!({"properties": {"a": {"const": {"pattern": attack}}, "pattern": {"type": "string"}}}))
                .await;
        assert_eq!(res.status(), 200);
    }
}

/// `^(a+)+$` blows a backtracking engine up on `aaaa…!`; the linear engine answers a
/// large document at once, with the documented outcomes. (The timeout only guards
/// against a hang; it is no performance assertion.)
#[tokio::test(flavor = "multi_thread")]
async fn schema_patterns_run_in_linear_time() {
    for app in TestApp::each().await {
        let schema = json!({"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}, "tags": {"type": "array", "items": {"pattern": "^(a|aa)+$"}}}});
        assert_eq!(put(&app, "/api/v1/data/lin/_schema", schema, &[]).await.status(), 200);
        let bad = format!("{}!", "a".repeat(40_000));
        let good = "a".repeat(40_000);
        let tags: Vec<String> = (0..200).map(|_| format!("{}!", "a".repeat(200))).collect();
        tokio::time::timeout(std::time::Duration::from_secs(120), async {
            let res = put(&app, "/api/v1/data/lin/d1", json!({ "name": bad }), &[]).await;
            let problem = assert_problem(res, 422, "schema_violation").await;
            assert!(problem["detail"].as_str().unwrap().contains("/name"), "{problem}");
            let res = put(&app, "/api/v1/data/lin/d1", json!({ "name": "a", "tags": tags }), &[]).await;
            assert_problem(res, 422, "schema_violation").await;
            let res = put(&app, "/api/v1/data/lin/d1", json!({ "name": good }), &[]).await;
            assert_eq!(res.status(), 201);
            let res = patch(&app, "/api/v1/data/lin/d1", json!({ "name": bad }), &[]).await;
            assert_problem(res, 422, "schema_violation").await;
            let res = patch(&app, "/api/v1/data/lin/d1", json!({ "tags": ["aaa"] }), &[]).await;
            assert_eq!(res.status(), 200);
        })
        .await
        .expect("validation hung");
    }
}

/// Documents page like every list (issue 18): `limit` 1 to 500, opaque cursors, no
/// cursor on the last page; anything else is 400 `invalid_query` naming the parameter.
#[tokio::test(flavor = "multi_thread")]
async fn documents_are_listed_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    for id in ["a", "b"] {
        let res = put(&app, &format!("/api/v1/data/notes/{id}"), json!({}), &[]).await;
        assert_eq!(res.status(), 201, "{id}");
    }
    let page: Value = app.get_json("/api/v1/data/notes?limit=1").await;
    assert_eq!(page["items"][0]["id"], "a");
    let cursor = page["next_cursor"].as_str().unwrap();
    assert_ne!(cursor, "a", "the cursor is opaque");
    let last: Value = app
        .get_json(&format!("/api/v1/data/notes?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(last["items"][0]["id"], "b");
    assert!(last.get("next_cursor").is_none(), "a full last page has no cursor");
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%25%25", "cursor"),
    ] {
        let res = get(&app, &format!("/api/v1/data/notes?{query}")).await;
        let problem = assert_problem(res, 400, "invalid_query").await;
        assert_eq!(problem["field"], field, "{query}");
    }
}
