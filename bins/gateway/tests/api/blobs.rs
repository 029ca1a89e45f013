use futures_util::StreamExt;
use ring::digest;
use serde_json::{Value, json};

use crate::helpers::{Go, TestApp, assert_problem, delete, get};
use reqwest::Method;

pub(crate) fn md5_b64(data: &[u8]) -> String {
    use md5::Digest;
    data_encoding::BASE64.encode(&md5::Md5::digest(data))
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(digest::digest(&digest::SHA256, data).as_ref())
}

pub async fn put(app: &TestApp, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.put(app.url(path)).bearer_auth(&app.admin_key).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.go().await
}

/// The app on the in-process S3 server, with `extra` settings.
pub async fn s3_app(s3: &blob_store::testing::S3TestServer, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("S3_BUCKET", blob_store::testing::BUCKET),
        ("AWS_ENDPOINT_URL_S3", s3.endpoint.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", blob_store::testing::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", blob_store::testing::SECRET_KEY),
    ];
    vars.extend_from_slice(extra);
    TestApp::with_vars(&vars, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn location_headers_are_percent_encoded() {
    let app = TestApp::spawn().await;
    let res = put(
        &app,
        "/api/v1/blobs/web/%EB%B3%B4%EA%B3%A0%EC%84%9C%202026.txt",
        "본문".as_bytes().to_vec(),
        &[],
    )
    .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"]
        .to_str()
        .expect("an ASCII Location")
        .to_owned();
    assert_eq!(location, "/api/v1/blobs/web/%EB%B3%B4%EA%B3%A0%EC%84%9C%202026.txt");
    let got = get(&app, &location).await;
    assert_eq!(got.text().await.unwrap(), "본문");
    // The form upload says the same.
    let form = reqwest::multipart::Form::new().text("key", "폴더/a b?.txt").part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"),
    );
    let res = app.admin(Method::POST, "/api/v1/blobs/web").multipart(form).go().await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "/api/v1/blobs/web/%ED%8F%B4%EB%8D%94/a%20b%3F.txt"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trips_with_checksums_ranges_and_conditions() {
    let app = TestApp::spawn().await;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let path = "/api/v1/blobs/client/reports/2026/%EA%B2%B0%EC%82%B0.bin";
    let res = put(
        &app,
        path,
        data.clone(),
        &[
            ("content-md5", &md5_b64(&data)),
            ("x-checksum-sha256", &sha256_hex(&data)),
        ],
    )
    .await;
    assert_eq!(res.status(), 201);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(stored["key"], "reports/2026/결산.bin");
    assert_eq!(stored["size"], 200_000);
    assert_eq!(stored["sha256"], sha256_hex(&data));
    let etag = stored["etag"].as_str().unwrap().to_owned();

    let get_with = |h: Option<(&'static str, String)>| {
        let mut req = app.client.get(app.url(path)).bearer_auth(&app.admin_key);
        if let Some((k, v)) = h {
            req = req.header(k, v);
        }
        req.send()
    };
    let res = get_with(None).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], etag.as_str());
    assert_eq!(res.headers()["x-checksum-sha256"], sha256_hex(&data).as_str());
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename*=UTF-8''")
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());

    let res = get_with(Some(("range", "bytes=100-199".into()))).await.unwrap();
    // A part still names the whole object's checksum.
    assert_eq!(res.headers()["x-checksum-sha256"], sha256_hex(&data).as_str());
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 100-199/200000");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[100..200]);
    let res = get_with(Some(("range", "bytes=999999-".into()))).await.unwrap();
    assert_eq!(res.headers()["content-range"], "bytes */200000");
    assert_problem(res, 416, "range_not_satisfiable").await;
    let res = get_with(Some(("if-none-match", etag.clone()))).await.unwrap();
    assert_eq!(res.status(), 304);
    let head = app.admin(Method::HEAD, path).go().await;
    assert_eq!(
        (
            head.status().as_u16(),
            head.headers()["content-length"].to_str().unwrap()
        ),
        (200, "200000")
    );

    let res = put(&app, path, b"other".to_vec(), &[("if-none-match", "*")]).await;
    assert_problem(res, 412, "object_exists").await;
    let res = put(
        &app,
        "/api/v1/blobs/client/bad-md5",
        b"abc".to_vec(),
        &[("content-md5", &md5_b64(b"abd"))],
    )
    .await;
    assert_problem(res, 400, "checksum_mismatch").await;
    let res = get(&app, "/api/v1/blobs/client/bad-md5").await;
    assert_problem(res, 404, "object_not_found").await;

    let res = delete(&app, path).await;
    assert_eq!(res.status(), 204);
    let res = delete(&app, path).await;
    assert_problem(res, 404, "object_not_found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_through_and_limits_hold() {
    let app = TestApp::with_vars(
        &[(
            "BLOB_NAMESPACES",
            r#"[{"name":"big","max_size":33554432},{"name":"img","max_size":1000,"allowed_types":["image/*"]}]"#,
        )],
        None,
    )
    .await;
    // 24 MiB sent as a chunked stream (no Content-Length), read back whole.
    let chunk: Vec<u8> = (0..65_536u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut expected = digest::Context::new(&digest::SHA256);
    for _ in 0..384 {
        expected.update(&chunk);
    }
    let expected = data_encoding::HEXLOWER.encode(expected.finish().as_ref());
    let c = chunk.clone();
    let stream = futures_util::stream::iter((0..384).map(move |_| Ok::<_, std::io::Error>(c.clone())));
    let res = app
        .admin(Method::PUT, "/api/v1/blobs/big/artefacts/model.bin")
        .body(reqwest::Body::wrap_stream(stream))
        .go()
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["sha256"], expected);
    let res = get(&app, "/api/v1/blobs/big/artefacts/model.bin").await;
    let mut body = res.bytes_stream();
    let mut got = digest::Context::new(&digest::SHA256);
    let mut size = 0usize;
    while let Some(part) = body.next().await {
        let part = part.unwrap();
        size += part.len();
        got.update(&part);
    }
    assert_eq!(size, 384 * 65_536);
    assert_eq!(data_encoding::HEXLOWER.encode(got.finish().as_ref()), expected);

    // Over the limit: refused from Content-Length before reading, or as the stream passes it.
    let res = put(
        &app,
        "/api/v1/blobs/img/a.png",
        vec![0; 2000],
        &[("content-type", "image/png")],
    )
    .await;
    assert_problem(res, 413, "payload_too_large").await;
    let stream = futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![1u8; 400])));
    let res = app
        .admin(Method::PUT, "/api/v1/blobs/img/b.png")
        .header("content-type", "image/png")
        .body(reqwest::Body::wrap_stream(stream))
        .go()
        .await;
    assert_problem(res, 413, "payload_too_large").await;
    let res = get(&app, "/api/v1/blobs/img/b.png").await;
    assert_problem(res, 404, "object_not_found").await;
    let res = put(
        &app,
        "/api/v1/blobs/img/c.html",
        b"<p>".to_vec(),
        &[("content-type", "text/html")],
    )
    .await;
    assert_problem(res, 415, "content_type_not_allowed").await;
    let res = put(&app, "/api/v1/blobs/nowhere/x", b"1".to_vec(), &[]).await;
    assert_problem(res, 404, "namespace_not_found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_are_per_namespace() {
    let app = TestApp::spawn().await;
    put(&app, "/api/v1/blobs/client/doc.txt", b"hi".to_vec(), &[]).await;
    let (_, client_reader) = app.create_key(&["blobs:read:client"]).await;
    let (_, ai_writer) = app.create_key(&["blobs:write:ai"]).await;
    let (_, all_reader) = app.create_key(&["blobs:read"]).await;
    let get = |ns: &str, key: &str| {
        app.as_key(key, Method::GET, &format!("/api/v1/blobs/{ns}/doc.txt"))
            .go()
    };
    assert_eq!(get("client", &client_reader).await.status(), 200);
    assert_problem(get("ai", &client_reader).await, 403, "insufficient_scope").await;
    assert_eq!(get("client", &all_reader).await.status(), 200);
    assert_problem(get("client", &ai_writer).await, 403, "insufficient_scope").await;
    let write = |ns: &str, key: &str| {
        app.as_key(key, Method::PUT, &format!("/api/v1/blobs/{ns}/new.txt"))
            .body("x")
            .go()
    };
    assert_eq!(write("ai", &ai_writer).await.status(), 201);
    assert_problem(write("web", &ai_writer).await, 403, "insufficient_scope").await;
    assert_problem(write("client", &client_reader).await, 403, "insufficient_scope").await;
    let res = app
        .client
        .put(app.url("/api/v1/blobs/ai/anon.txt"))
        .body("x")
        .go()
        .await;
    assert_problem(res, 401, "missing_credentials").await;
    let res = app.as_key(&ai_writer, Method::GET, "/api/v1/blobs/client").go().await;
    assert_problem(res, 403, "insufficient_scope").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_pages_through_folders() {
    let app = TestApp::spawn().await;
    for key in ["a.txt", "photos/1.jpg", "photos/2.jpg", "photos/2026/3.jpg", "z.txt"] {
        assert_eq!(
            put(&app, &format!("/api/v1/blobs/web/{key}"), b"1".to_vec(), &[])
                .await
                .status(),
            201
        );
    }
    let get = |q: &str| app.admin(Method::GET, &format!("/api/v1/blobs/web{q}")).go();
    let top: Value = get("?delimiter=/").await.json().await.unwrap();
    let keys: Vec<&str> = top["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a.txt", "z.txt"]);
    assert_eq!(top["common_prefixes"], json!(["photos/"]));
    let photos: Value = get("?prefix=photos/&delimiter=/").await.json().await.unwrap();
    assert_eq!(photos["objects"].as_array().unwrap().len(), 2);
    assert_eq!(photos["common_prefixes"], json!(["photos/2026/"]));
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = get(&format!("?limit=2{cursor}")).await.json().await.unwrap();
        seen.extend(
            page["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["key"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["a.txt", "photos/1.jpg", "photos/2.jpg", "photos/2026/3.jpg", "z.txt"]
    );
    // The paging rule: limit 1 to 500 (default 100), a bad limit or cursor names itself.
    assert_eq!(get("?limit=500").await.status(), 200);
    for bad in ["?limit=0", "?limit=501", "?limit=1000"] {
        let problem = assert_problem(get(bad).await, 400, "invalid_query").await;
        assert_eq!(problem["field"], "limit", "{bad}: {problem}");
    }
    let problem = assert_problem(get("?cursor=!!").await, 400, "invalid_query").await;
    assert_eq!(problem["field"], "cursor", "{problem}");
    assert_problem(get("?delimiter=,").await, 400, "invalid_query").await;
}
