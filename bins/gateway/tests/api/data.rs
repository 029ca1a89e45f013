use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

async fn put(app: &TestApp, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.put(app.url(path)).bearer_auth(&app.admin_key).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn patch(app: &TestApp, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app
        .client
        .patch(app.url(path))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
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

        let get = app
            .client
            .get(app.url(doc))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(get.headers()["etag"], "\"2\"");
        let again = app
            .client
            .get(app.url(doc))
            .bearer_auth(&app.admin_key)
            .header("if-none-match", "\"2\"")
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);

        let res = app
            .client
            .delete(app.url(doc))
            .bearer_auth(&app.admin_key)
            .header("if-match", "\"1\"")
            .send()
            .await
            .unwrap();
        assert_problem(res, 412, "precondition_failed").await;
        let res = app
            .client
            .delete(app.url(doc))
            .bearer_auth(&app.admin_key)
            .header("if-match", "\"2\"")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let res = app
            .client
            .get(app.url(doc))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_problem(res, 404, "document_not_found").await;
        let res = patch(&app, doc, json!({"a": 1}), &[]).await;
        assert_problem(res, 404, "document_not_found").await;

        let trail: Value = app
            .get_json("/api/v1/events?subject=document:orders/o-1&order=asc")
            .await;
        let types: Vec<&str> = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["document.written", "document.written", "document.deleted"]);
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
            let client = app.client.clone();
            let (url, key) = (app.url(doc), app.admin_key.clone());
            tasks.push(tokio::spawn(async move {
                client
                    .patch(url)
                    .bearer_auth(key)
                    .header("content-type", "application/merge-patch+json")
                    .body(json!({ format!("f{i}"): i }).to_string())
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        let body: Value = app.get_json(doc).await;
        assert_eq!(body["data"].as_object().unwrap().len(), 16, "{}: {body}", app.backend());
        assert_eq!(body["version"], 17);
        // 8 concurrent replaces with the same If-Match: exactly one wins.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let client = app.client.clone();
            let (url, key) = (app.url(doc), app.admin_key.clone());
            tasks.push(tokio::spawn(async move {
                client
                    .put(url)
                    .bearer_auth(key)
                    .header("if-match", "\"17\"")
                    .json(&json!({ "winner": i }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap().as_u16() {
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
    assert_eq!(
        put(
            &app,
            "/api/v1/data/people/p1",
            json!({"name": "Kim", "team": "web"}),
            &[]
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        put(
            &app,
            "/api/v1/data/people/p2",
            json!({"name": "Lee", "team": "ai"}),
            &[]
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        put(
            &app,
            "/api/v1/data/people/q1",
            json!({"name": "Park", "team": "web"}),
            &[]
        )
        .await
        .status(),
        201
    );
    let res = patch(&app, "/api/v1/data/people/p1", json!({"name": 7}), &[]).await;
    assert_problem(res, 422, "schema_violation").await;
    let res = put(&app, "/api/v1/data/people/_schema", json!({"type": "nonsense"}), &[]).await;
    assert_problem(res, 422, "invalid_schema").await;

    let list = |q: &str| {
        app.client
            .get(app.url(&format!("/api/v1/data/people{q}")))
            .bearer_auth(&app.admin_key)
            .send()
    };
    let web: Value = list("?team=web").await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = web["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p1", "q1"]);
    let p: Value = list("?prefix=p&limit=1").await.unwrap().json().await.unwrap();
    assert_eq!(p["items"][0]["id"], "p1");
    let next: Value = list(&format!(
        "?prefix=p&limit=1&cursor={}",
        p["next_cursor"].as_str().unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
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
    let res = app
        .client
        .put(app.url("/api/v1/data/people/p9"))
        .bearer_auth(&app.admin_key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(res, 415, "unsupported_media_type").await;
    let res = app
        .client
        .put(app.url("/api/v1/data/people/p9"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "malformed_json").await;

    let (_, reader) = app.create_key(&["data:read:people"]).await;
    let (_, writer) = app.create_key(&["data:write:people"]).await;
    let (_, other) = app.create_key(&["data:read:orders"]).await;
    let get = |k: &str| {
        app.client
            .get(app.url("/api/v1/data/people/p1"))
            .bearer_auth(k.to_owned())
            .send()
    };
    assert_eq!(get(&reader).await.unwrap().status(), 200);
    assert_problem(get(&other).await.unwrap(), 403, "insufficient_scope").await;
    assert_problem(get(&writer).await.unwrap(), 403, "insufficient_scope").await;
    let res = app
        .client
        .put(app.url("/api/v1/data/people/p3"))
        .bearer_auth(&reader)
        .json(&json!({"name": "n"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app
        .client
        .put(app.url("/api/v1/data/people/p3"))
        .bearer_auth(&writer)
        .json(&json!({"name": "n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
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
        for schema in schemas {
            let res = put(&app, "/api/v1/data/slow/_schema", schema.clone(), &[]).await;
            let problem = assert_problem(res, 422, "invalid_schema").await;
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains(r#""^(\\w+\\s?)+(?<=z)$""#), "{schema}: {detail}");
        }
        let res = put(
            &app,
            "/api/v1/data/slow/_schema",
            json!({"properties": {"a": {"pattern": r"(x)\1"}}}),
            &[],
        )
        .await;
        let problem = assert_problem(res, 422, "invalid_schema").await;
        assert!(problem["detail"].as_str().unwrap().contains(r#""(x)\\1""#), "{problem}");
        // A pattern too large to compile within the limits is refused too.
        let res = put(
            &app,
            "/api/v1/data/slow/_schema",
            json!({"properties": {"a": {"pattern": r"\w{1000}\w{1000}"}}}),
            &[],
        )
        .await;
        assert_problem(res, 422, "invalid_schema").await;
        // So is a schema with more patterns than the limit.
        let many: serde_json::Map<String, Value> = (0..300)
            .map(|i| (format!("f{i}"), json!({"pattern": format!("^a{i}$")})))
            .collect();
        let res = put(&app, "/api/v1/data/slow/_schema", json!({"properties": many}), &[]).await;
        let problem = assert_problem(res, 422, "invalid_schema").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("256 patterns"),
            "{problem}"
        );
        // Nothing was stored; instances (`const`, `enum`) may hold such strings.
        let res = app
            .client
            .get(app.url("/api/v1/data/slow/_schema"))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_problem(res, 404, "schema_not_found").await;
        let res = put(
            &app,
            "/api/v1/data/slow/_schema",
            json!({"properties": {"a": {"const": {"pattern": attack}}, "pattern": {"type": "string"}}}),
            &[],
        )
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
        assert_eq!(
            put(&app, &format!("/api/v1/data/notes/{id}"), json!({}), &[])
                .await
                .status(),
            201
        );
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
        let res = crate::helpers::get(&app, &format!("/api/v1/data/notes?{query}")).await;
        let problem = assert_problem(res, 400, "invalid_query").await;
        assert_eq!(problem["field"], field, "{query}");
    }
}
