use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{Go, TestApp, assert_problem, delete, get, id_of, send_json};
use reqwest::Method;

async fn issue(app: &TestApp, name: &str) -> String {
    let res = send_json(
        app,
        Method::POST,
        "/api/v1/licenses",
        &json!({"product": "client", "name": name, "owner_email": "o@example.com"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    id_of(res).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_is_listed_with_filters_and_pages() {
    for app in TestApp::each().await {
        let first = issue(&app, "one").await;
        let second = issue(&app, "two").await;
        let res = app
            .admin(Method::POST, &format!("/api/v1/licenses/{first}/suspend"))
            .go()
            .await;
        assert_eq!(res.status(), 200);
        let res = app
            .admin(Method::PUT, "/api/v1/blobs/web/note.txt")
            .body("hi")
            .go()
            .await;
        assert_eq!(res.status(), 201);

        let get = |q: String| app.admin(Method::GET, &format!("/api/v1/events{q}")).go();
        let licences: Value = get("?type=license.*".into()).await.json().await.unwrap();
        let types: Vec<&str> = licences["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["license.suspended", "license.issued", "license.issued"],
            "newest first by default on {}",
            app.backend()
        );
        let about: Value = get(format!("?subject=license:{first}&order=asc"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(about["items"].as_array().unwrap().len(), 2);
        assert!(about["items"][0]["actor"].as_str().unwrap().starts_with("api_key:"));
        assert_eq!(about["items"][0]["data"]["name"], "one");
        let blob: Value = get("?type=blob.written".into()).await.json().await.unwrap();
        assert_eq!(blob["items"][0]["subject"], "blob:web/note.txt");
        assert_eq!(blob["items"][0]["data"]["size"], 2);

        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page: Value = get(format!("?type=license.*&limit=2&order=asc{cursor}"))
                .await
                .json()
                .await
                .unwrap();
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["subject"].as_str().unwrap().to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(
            seen,
            [
                format!("license:{first}"),
                format!("license:{second}"),
                format!("license:{first}")
            ]
        );
        // Newest first, page by page; the cursor keeps its order, and contradicting it is
        // refused rather than skipping records.
        let first_page: Value = get("?type=license.*&limit=2".into()).await.json().await.unwrap();
        let next = first_page["next_cursor"].as_str().unwrap().to_owned();
        let rest: Value = get(format!("?type=license.*&limit=2&cursor={next}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(rest["items"][0]["subject"], format!("license:{first}"));
        assert_eq!(rest["items"][0]["type"], "license.issued");
        let p = assert_problem(
            get(format!("?type=license.*&limit=2&order=asc&cursor={next}")).await,
            400,
            "invalid_query",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("`desc` order"), "{p}");
        assert_problem(get("?cursor=not-a-cursor".into()).await, 400, "invalid_query").await;
        assert_problem(get("?order=sideways".into()).await, 400, "invalid_query").await;
        assert_problem(get("?limit=0".into()).await, 400, "invalid_query").await;
        assert_problem(get("?type=DROP TABLE".into()).await, 400, "invalid_query").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn time_filters_take_dates_and_rfc_3339_and_name_what_is_wrong() {
    let app = TestApp::spawn().await;
    issue(&app, "time filters").await;
    let get = |query: &'static str| {
        app.client
            .get(format!("{}{query}", app.url("/api/v1/events")))
            .bearer_auth(&app.admin_key)
            .send()
    };
    // A date is its midnight UTC; an unencoded + (a space by then) is read as +.
    for query in [
        "?since=2000-01-01",
        "?since=2000-01-01T09:00:00Z",
        "?since=2000-01-01T09:00:00%2B09:00",
        "?since=2000-01-01T09:00:00+09:00",
    ] {
        let res = get(query).await.unwrap();
        assert_eq!(res.status(), 200, "{query}");
        let page: Value = res.json().await.unwrap();
        assert!(!page["items"].as_array().unwrap().is_empty(), "{query}");
    }
    let page: Value = get("?until=2000-01-01").await.unwrap().json().await.unwrap();
    assert_eq!(page["items"], json!([]), "nothing happened before 2000");
    for (query, name) in [("?since=yesterday", "since"), ("?until=2026-13-01", "until")] {
        let problem = assert_problem(get(query).await.unwrap(), 400, "invalid_query").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("{name}: `")) && detail.contains("2026-12-01"),
            "{detail}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_need_their_scope() {
    let app = TestApp::spawn().await;
    let (_, reader) = app.create_key(&["events:read"]).await;
    let (_, other) = app.create_key(&["licenses:admin"]).await;
    assert_eq!(
        app.as_key(&reader, Method::GET, "/api/v1/events").go().await.status(),
        200
    );
    let res = app.as_key(&other, Method::GET, "/api/v1/events").go().await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app.client.get(app.url("/api/v1/events/stream")).go().await;
    assert_problem(res, 401, "missing_credentials").await;
}

/// Reads SSE frames until one with `event: <ty>` arrives; returns its id and data.
async fn next_frame(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    ty: &str,
) -> (String, Value) {
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
            if field("event: ").as_deref() == Some(ty) {
                return (
                    field("id: ").unwrap(),
                    serde_json::from_str(&field("data: ").unwrap()).unwrap(),
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_tail_streams_new_events_and_resumes_from_last_event_id() {
    let app = TestApp::spawn().await;
    issue(&app, "before the tail").await;
    let res = get(&app, "/api/v1/events/stream?type=license.*").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.bytes_stream();
    let id = issue(&app, "during the tail").await;
    let (event_id, data) = next_frame(&mut body, "license.issued").await;
    assert_eq!(
        data["subject"],
        format!("license:{id}"),
        "the tail starts now, not with older events"
    );
    drop(body);

    // Reconnect with Last-Event-ID: only what came after it.
    let later = issue(&app, "while disconnected").await;
    let res = app
        .admin(Method::GET, "/api/v1/events/stream?type=license.*")
        .header("last-event-id", event_id)
        .go()
        .await;
    let mut body = res.bytes_stream();
    let (_, data) = next_frame(&mut body, "license.issued").await;
    assert_eq!(data["subject"], format!("license:{later}"));
}

/// Reads the rest of a stream (hang guard: 20 s) and returns what it said.
async fn read_to_end<S>(body: &mut S) -> String
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the stream was still open after 20 s: {text}");
    text
}

/// A live tail ends when its key is revoked (the review found one still receiving events
/// after its key was revoked) or expires, and says why.
#[tokio::test(flavor = "multi_thread")]
async fn the_live_tail_ends_when_its_key_is_revoked_or_expires() {
    let app = TestApp::spawn().await;
    let (id, key) = app.create_key(&["events:read"]).await;
    let res = app
        .as_key(&key, Method::GET, "/api/v1/events/stream?type=license.*")
        .go()
        .await;
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    issue(&app, "seen while the key is valid").await;
    next_frame(&mut body, "license.issued").await;
    let revoked = delete(&app, &format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(revoked.status(), 200);
    // Events keep happening; the stream still ends.
    let issuer = tokio::spawn({
        let app_url = app.url("/api/v1/licenses");
        let admin = app.admin_key.clone();
        async move {
            let client = reqwest::Client::new();
            for i in 0..20 {
                let _ = client
                    .post(&app_url)
                    .bearer_auth(&admin)
                    .json(&serde_json::json!({ "product": "client", "name": format!("late {i}"), "owner_email": "o@example.com" }))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let rest = read_to_end(&mut body).await;
    assert!(rest.ends_with(": closed: the API key was revoked\n\n"), "{rest}");
    issuer.abort();

    // A key that expires: its stream ends too.
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let created: serde_json::Value = send_json(
        &app,
        Method::POST,
        "/api/v1/api-keys",
        &serde_json::json!({ "name": "short", "scopes": ["events:read"], "expires_at": expires }),
    )
    .await
    .json()
    .await
    .unwrap();
    let res = app
        .as_key(created["key"].as_str().unwrap(), Method::GET, "/api/v1/events/stream")
        .go()
        .await;
    assert_eq!(res.status(), 200);
    let rest = read_to_end(&mut res.bytes_stream()).await;
    assert!(rest.ends_with(": closed: the API key expired\n\n"), "{rest}");
}
