use crate::helpers::{Go, TestApp};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_served_and_matches_its_snapshot() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/openapi.json")).go().await;
    assert_eq!(res.status(), 200);
    let served: serde_json::Value = res.json().await.unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    let built = serde_json::to_value(gateway::app::openapi()).unwrap();
    assert_eq!(served, built, "the served document is the one the routes build");
    insta::assert_json_snapshot!("openapi", served);
}

/// Client generators name methods after `operationId`s: each is present, unique, and
/// `<tag>_<action>` in snake case (`licenses_validate`, `api_keys_list`).
#[test]
fn every_operation_has_a_unique_descriptive_operation_id() {
    let doc = serde_json::to_value(gateway::app::openapi()).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            let tag = op["tags"][0].as_str().unwrap().replace('-', "_");
            assert!(
                id.starts_with(&format!("{tag}_")) && id.len() > tag.len() + 1,
                "{method} {path}: {id} does not start with its tag {tag}_"
            );
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{method} {path}: {id} is not snake case"
            );
            if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("{id} names both {other} and {method} {path}");
            }
        }
    }
    assert!(seen.len() > 50, "only {} operations", seen.len());
    // Every schema a `$ref` names is in the document (a generator stops at the first that is not).
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            schemas.contains_key(name),
            "#/components/schemas/{name} is referenced but not defined"
        );
    }
    for expected in ["licenses_validate", "blobs_download", "emails_send"] {
        assert!(seen.contains_key(expected), "no {expected} among {:?}", seen.keys());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_declares_its_problem_responses() {
    let doc = serde_json::to_value(gateway::app::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let secured = op.get("security").is_some();
            if secured {
                for status in ["401", "403"] {
                    let problem = &responses[status]["content"]["application/problem+json"];
                    assert!(problem.is_object(), "{method} {path} lacks a {status} problem response");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn swagger_ui_is_served_at_docs() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/docs")).go().await;
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/docs/");
    let res = app.client.get(app.url("/docs/")).go().await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Swagger UI"));
    let res = app.client.get(app.url("/docs/swagger-initializer.js")).go().await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("/openapi.json"));
}

/// Every timestamp in every response body has one format: RFC 3339 in UTC with a `Z` and
/// exactly six fractional digits (before: 0, 3, 6 or 9 digits by value, and some without
/// any offset).
#[tokio::test(flavor = "multi_thread")]
async fn every_timestamp_in_a_response_has_one_format() {
    use serde_json::{Value, json};
    let app = TestApp::with_vars(
        &[
            ("SES_SENDER_EMAIL", "Shop <shop@example.com>"),
            ("SLACK_DEFAULT_CHANNEL", "#ops"),
            ("MAIL_TRANSPORT", "dev"),
            ("SLACK_TRANSPORT", "dev"),
        ],
        None,
    )
    .await;
    let send = |method: &str, path: &str, body: Value| {
        app.client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&app.admin_key)
            .json(&body)
    };
    let mut bodies: Vec<(String, Value)> = Vec::new();
    let mut keep = |what: &str, v: Value| bodies.push((what.to_owned(), v));

    let res = send(
        "POST",
        "/api/v1/licenses",
        json!({"product": "client", "name": "Seat", "owner_email": "it@example.com", "duration": "30d"}),
    )
    .go()
    .await;
    assert_eq!(res.status(), 201);
    let issued: Value = res.json().await.unwrap();
    let license_key = issued["key"].as_str().unwrap().to_owned();
    let license_id = issued["id"].as_str().unwrap().to_owned();
    keep("issued licence", issued);
    let res = send(
        "POST",
        "/api/v1/licenses/activate",
        json!({"key": license_key, "fingerprint": "m-1"}),
    )
    .go()
    .await;
    assert_eq!(res.status(), 201, "activation");
    keep("machine", res.json().await.unwrap());
    let res = send("POST", "/api/v1/licenses/validate", json!({"key": license_key}))
        .go()
        .await;
    keep("validation", res.json().await.unwrap());
    keep("licence", app.get_json(&format!("/api/v1/licenses/{license_id}")).await);
    keep("licences", app.get_json("/api/v1/licenses").await);

    let res = send(
        "POST",
        "/api/v1/emails",
        json!({"to": "ann@example.org", "subject": "Hi", "text": "Hello"}),
    )
    .go()
    .await;
    assert_eq!(res.status(), 202, "email");
    let email: Value = res.json().await.unwrap();
    keep(
        "email",
        app.get_json(&format!("/api/v1/emails/{}", email["id"].as_str().unwrap()))
            .await,
    );
    let res = send(
        "POST",
        "/api/v1/slack/messages",
        json!({"level": "info", "title": "Deploy"}),
    )
    .go()
    .await;
    assert_eq!(res.status(), 202, "slack");
    keep("slack messages", app.get_json("/api/v1/slack/messages").await);

    let res = send("PUT", "/api/v1/data/notes/one", json!({"text": "hi"})).go().await;
    assert!(res.status().is_success(), "document");
    keep("document", app.get_json("/api/v1/data/notes/one").await);
    keep("documents", app.get_json("/api/v1/data/notes").await);

    let res = app
        .admin(Method::PUT, "/api/v1/blobs/web/a.txt")
        .body("hello")
        .go()
        .await;
    assert!(res.status().is_success(), "blob");
    keep("blob listing", app.get_json("/api/v1/blobs/web").await);
    let res = send(
        "POST",
        "/api/v1/blobs/web/presign",
        json!({"key": "a.txt", "method": "GET"}),
    )
    .go()
    .await;
    assert_eq!(res.status(), 200, "presign");
    keep("signed URL", res.json().await.unwrap());

    app.create_key(&["emails:send"]).await;
    keep("api keys", app.get_json("/api/v1/api-keys").await);
    keep("events", app.get_json("/api/v1/events").await);

    let pattern = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$").unwrap();
    let looks_like_time = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:").unwrap();
    fn strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::String(s) => out.push((path, s)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| strings(v, format!("{path}[{i}]"), out)),
            Value::Object(o) => o.iter().for_each(|(k, v)| strings(v, format!("{path}.{k}"), out)),
            _ => {}
        }
    }
    let mut seen = 0;
    for (what, body) in &bodies {
        let mut all = Vec::new();
        strings(body, String::new(), &mut all);
        for (path, s) in all {
            let named = ["_at", "last_modified", ".at"].iter().any(|end| path.ends_with(end));
            if named || looks_like_time.is_match(s) {
                seen += 1;
                assert!(pattern.is_match(s), "{what} {path}: `{s}`");
            }
        }
    }
    assert!(seen >= 25, "only {seen} timestamps were seen");
}
