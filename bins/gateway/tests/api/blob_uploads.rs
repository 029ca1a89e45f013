//! Storage uploads as browsers and command-line tools send them: form fields in any
//! order, and media types inferred from the key when the client sends a generic one.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::blobs::{put, s3_app};
use crate::helpers::{Go, TestApp, assert_problem, get};
use reqwest::Method;

async fn post_form(app: &TestApp, ns: &str, form: Form) -> reqwest::Response {
    app.admin(Method::POST, &format!("/api/v1/blobs/{ns}"))
        .multipart(form)
        .go()
        .await
}

fn file(body: &[u8], name: &str) -> Part {
    Part::bytes(body.to_vec()).file_name(name.to_owned())
}

/// The files in the local store's temporary folder.
fn temp_files(blob_dir: &Path) -> Vec<String> {
    std::fs::read_dir(blob_dir.join(".tmp"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The app on its own `BLOB_DIR` (returned so the test can look into it).
async fn app_with_blob_dir(namespaces: &str) -> (TestApp, tempfile::TempDir) {
    let blobs = tempfile::tempdir().unwrap();
    let app = TestApp::with_vars(
        &[
            ("BLOB_DIR", &blobs.path().to_string_lossy()),
            ("BLOB_NAMESPACES", namespaces),
        ],
        None,
    )
    .await;
    (app, blobs)
}

#[tokio::test(flavor = "multi_thread")]
async fn form_fields_come_in_any_order() {
    let (app, blobs) = app_with_blob_dir(r#"[{"name":"web","max_size":1000000}]"#).await;
    // `curl -F file=@note.txt -F key=after.txt`: the key that follows the file wins.
    let form = Form::new()
        .part("file", file("적어 둔 것".as_bytes(), "note.txt"))
        .text("key", "after.txt");
    let res = post_form(&app, "web", form).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["location"], "/api/v1/blobs/web/after.txt");
    let stored: Value = res.json().await.unwrap();
    assert_eq!(
        (stored["key"].as_str(), stored["size"].as_u64()),
        (Some("after.txt"), Some(14))
    );
    assert_eq!(
        get(&app, "/api/v1/blobs/web/after.txt").await.text().await.unwrap(),
        "적어 둔 것"
    );
    assert_problem(get(&app, "/api/v1/blobs/web/note.txt").await, 404, "object_not_found").await;
    assert!(temp_files(blobs.path()).is_empty(), "{:?}", temp_files(blobs.path()));

    // A file first without any key still takes its name; a bad name is refused then.
    let res = post_form(&app, "web", Form::new().part("file", file(b"a", "named.txt"))).await;
    assert_eq!(res.json::<Value>().await.unwrap()["key"], "named.txt");
    let res = post_form(&app, "web", Form::new().part("file", file(b"a", ".."))).await;
    assert_problem(res, 400, "invalid_key").await;
    let res = post_form(&app, "web", Form::new().part("file", Part::bytes(b"a".to_vec()))).await;
    let problem = assert_problem(res, 400, "invalid_form").await;
    assert!(problem["detail"].as_str().unwrap().contains("file name"), "{problem}");
    // A bad key after the file is refused by the key rules, and nothing is stored.
    let form = Form::new().part("file", file(b"a", "kept-out.txt")).text("key", "a//b");
    assert_problem(post_form(&app, "web", form).await, 400, "invalid_key").await;
    assert_problem(
        get(&app, "/api/v1/blobs/web/kept-out.txt").await,
        404,
        "object_not_found",
    )
    .await;

    // Key first: streamed straight into the store, as before.
    let form = Form::new()
        .text("key", "before.txt")
        .part("file", file(b"first", "ignored.txt"));
    let res = post_form(&app, "web", form).await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        get(&app, "/api/v1/blobs/web/before.txt").await.text().await.unwrap(),
        "first"
    );
    assert!(temp_files(blobs.path()).is_empty(), "{:?}", temp_files(blobs.path()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_file_or_key_field_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let cases: Vec<(Form, &str)> = vec![
        (
            Form::new()
                .part("file", file(b"one", "one.txt"))
                .part("file", file(b"two", "two.txt")),
            "one_file_field",
        ),
        (
            Form::new()
                .text("key", "k.txt")
                .part("file", file(b"one", "one.txt"))
                .part("file", file(b"two", "two.txt")),
            "one_file_field",
        ),
        (
            Form::new()
                .text("key", "k.txt")
                .text("key", "other.txt")
                .part("file", file(b"one", "one.txt")),
            "one_key_field",
        ),
        (
            Form::new()
                .text("key", "k.txt")
                .part("file", file(b"one", "one.txt"))
                .text("key", "other.txt"),
            "one_key_field",
        ),
        (
            Form::new()
                .part("file", file(b"one", "one.txt"))
                .text("key", "k.txt")
                .text("key", "other.txt"),
            "one_key_field",
        ),
        (
            Form::new()
                .text("key", "k.txt")
                .part("file", file(b"one", "one.txt"))
                .text("note", "hi"),
            "only_key_and_file",
        ),
    ];
    for (i, (form, rule)) in cases.into_iter().enumerate() {
        let problem = assert_problem(post_form(&app, "web", form).await, 400, "invalid_form").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(&format!("(rule: {rule})")),
            "case {i}: {problem}"
        );
        for key in ["k.txt", "one.txt", "two.txt", "other.txt"] {
            let res = get(&app, &format!("/api/v1/blobs/web/{key}")).await;
            assert_eq!(res.status(), 404, "case {i}: {key} was stored");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spooled_files_are_bounded_and_always_removed() {
    let (app, blobs) = app_with_blob_dir(
        r#"[{"name":"small","max_size":1000},{"name":"img","max_size":100000,"allowed_types":["image/*"]}]"#,
    )
    .await;
    // The file first and over the limit: 413 while spooling, nothing left behind.
    let form = Form::new()
        .part("file", file(&[7u8; 2000], "big.bin"))
        .text("key", "big.bin");
    assert_problem(post_form(&app, "small", form).await, 413, "payload_too_large").await;
    assert!(temp_files(blobs.path()).is_empty(), "{:?}", temp_files(blobs.path()));
    // A part that names a type the namespace refuses is refused before it is spooled;
    // one whose generic type gives way to the key's is checked once the key is known.
    let form = Form::new()
        .part("file", file(b"<p>", "page.html").mime_str("text/html").unwrap())
        .text("key", "page.png");
    assert_problem(post_form(&app, "img", form).await, 415, "content_type_not_allowed").await;
    let form = Form::new().part("file", file(b"png", "x.bin")).text("key", "pic.png");
    let res = post_form(&app, "img", form).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["content_type"], "image/png");
    let form = Form::new().part("file", file(b"<p>", "x.png")).text("key", "page.html");
    assert_problem(post_form(&app, "img", form).await, 415, "content_type_not_allowed").await;
    assert!(temp_files(blobs.path()).is_empty(), "{:?}", temp_files(blobs.path()));

    // A client that goes away in the middle of a spooled file leaves nothing either.
    let boundary = "XBOUNDARYX";
    let head = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n\r\n");
    let request = format!(
        "POST /api/v1/blobs/small HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 5000\r\n\r\n{head}",
        app.admin_key
    );
    let mut conn = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    conn.write_all(&[1u8; 300]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while temp_files(blobs.path()).is_empty() {
        assert!(Instant::now() < deadline, "the file part was never spooled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(conn);
    while !temp_files(blobs.path()).is_empty() {
        assert!(Instant::now() < deadline, "left behind: {:?}", temp_files(blobs.path()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a download of `path` is served as: (Content-Type, the Content-Disposition type).
async fn served_as(app: &TestApp, path: &str) -> (String, String) {
    let res = get(app, path).await;
    assert_eq!(res.status(), 200, "{path}");
    let h = |n: &str| res.headers()[n].to_str().unwrap().to_owned();
    (
        h("content-type"),
        h("content-disposition").split(';').next().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn generic_types_are_inferred_from_the_key_and_text_is_served_as_utf8() {
    let app = TestApp::with_vars(
        &[(
            "BLOB_NAMESPACES",
            r#"[{"name":"web","max_size":100000},{"name":"img","max_size":100000,"allowed_types":["image/*"]},{"name":"bin","max_size":100000,"allowed_types":["application/octet-stream"]}]"#,
        )],
        None,
    )
    .await;
    let cases: &[(&str, Option<&str>, &str, &str, &str)] = &[
        // `curl -T`: no type or octet-stream.
        ("보고서.txt", None, "text/plain", "text/plain; charset=utf-8", "inline"),
        (
            "photo.png",
            Some("application/octet-stream"),
            "image/png",
            "image/png",
            "inline",
        ),
        // `curl --data-binary`: the form default.
        (
            "data.json",
            Some("application/x-www-form-urlencoded"),
            "application/json",
            "application/json; charset=utf-8",
            "attachment",
        ),
        (
            "page.html",
            Some("binary/octet-stream"),
            "text/html",
            "text/html; charset=utf-8",
            "attachment",
        ),
        (
            "model.weights",
            None,
            "application/octet-stream",
            "application/octet-stream",
            "attachment",
        ),
        // A type the client names is kept; a charset it names is served.
        (
            "table.csv",
            Some("text/csv"),
            "text/csv",
            "text/csv; charset=utf-8",
            "attachment",
        ),
        (
            "legacy.txt",
            Some("text/plain; charset=euc-kr"),
            "text/plain; charset=euc-kr",
            "text/plain; charset=euc-kr",
            "inline",
        ),
        (
            "really.png",
            Some("text/plain"),
            "text/plain",
            "text/plain; charset=utf-8",
            "inline",
        ),
    ];
    for (key, sent, stored, served, disposition) in cases {
        let headers: Vec<(&str, &str)> = sent.iter().map(|t| ("content-type", *t)).collect();
        let path = format!("/api/v1/blobs/web/{}", urlencode(key));
        let res = put(&app, &path, "내용".as_bytes().to_vec(), &headers).await;
        assert_eq!(res.status(), 201, "{key}");
        assert_eq!(res.json::<Value>().await.unwrap()["content_type"], *stored, "{key}");
        assert_eq!(
            served_as(&app, &path).await,
            ((*served).to_owned(), (*disposition).to_owned()),
            "{key}"
        );
    }
    let res = get(&app, "/api/v1/blobs/web/%EB%B3%B4%EA%B3%A0%EC%84%9C.txt").await;
    assert_eq!(res.text().await.unwrap(), "내용");

    // The namespace checks the final type: an extension cannot carry one past it...
    let res = put(
        &app,
        "/api/v1/blobs/bin/page.html",
        b"<p>".to_vec(),
        &[("content-type", "application/octet-stream")],
    )
    .await;
    assert_problem(res, 415, "content_type_not_allowed").await;
    let res = put(&app, "/api/v1/blobs/img/page.html", b"<p>".to_vec(), &[]).await;
    assert_problem(res, 415, "content_type_not_allowed").await;
    // ... and a generic upload of an image is an image.
    let res = put(&app, "/api/v1/blobs/img/pic.webp", b"RIFF".to_vec(), &[]).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["content_type"], "image/webp");
    let res = put(&app, "/api/v1/blobs/bin/blob.bin", b"1".to_vec(), &[]).await;
    assert_eq!(res.status(), 201);

    // Form parts without a type, or with the generic one, likewise.
    let form = Form::new()
        .text("key", "notes/메모.md")
        .part("file", file("# 제목".as_bytes(), "x"));
    let res = post_form(&app, "web", form).await;
    assert_eq!(res.json::<Value>().await.unwrap()["content_type"], "text/markdown");
    let form = Form::new().part(
        "file",
        file(b"GIF89a", "anim.gif")
            .mime_str("application/octet-stream")
            .unwrap(),
    );
    let res = post_form(&app, "img", form).await;
    assert_eq!(res.json::<Value>().await.unwrap()["content_type"], "image/gif");

    // A signed upload that names no type is bound to the key's; the final type is checked.
    let presign = |body: Value, ns: &str| {
        app.admin(Method::POST, &format!("/api/v1/blobs/{ns}/presign"))
            .json(&body)
            .go()
    };
    let p: Value = presign(json!({"key": "up/a.png", "method": "PUT", "content_length": 3}), "img")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["headers"]["Content-Type"], "image/png", "{p}");
    let res = presign(
        json!({"key": "up/a.html", "method": "PUT", "content_length": 3, "content_type": "application/octet-stream"}),
        "bin",
    )
    .await;
    assert_problem(res, 415, "content_type_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_s3_backend_stores_inferred_types_and_serves_text_as_utf8() {
    let s3 = blob_store::testing::S3TestServer::start().await;
    let app = s3_app(&s3, &[]).await;
    let res = put(
        &app,
        "/api/v1/blobs/web/docs/%EC%95%88%EB%82%B4.txt",
        "안내".as_bytes().to_vec(),
        &[],
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["content_type"], "text/plain");
    assert_eq!(
        served_as(&app, "/api/v1/blobs/web/docs/%EC%95%88%EB%82%B4.txt").await,
        ("text/plain; charset=utf-8".to_owned(), "inline".to_owned())
    );
    // A file before its key is spooled (in the system's temporary folder) on S3 too.
    let form = Form::new()
        .part("file", file(b"{}", "x.bin"))
        .text("key", "late/data.json");
    let res = post_form(&app, "web", form).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["content_type"], "application/json");
    assert_eq!(
        served_as(&app, "/api/v1/blobs/web/late/data.json").await,
        ("application/json; charset=utf-8".to_owned(), "attachment".to_owned())
    );
}

fn urlencode(key: &str) -> String {
    url::form_urlencoded::byte_serialize(key.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
