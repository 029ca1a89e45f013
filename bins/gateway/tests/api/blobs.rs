use futures_util::StreamExt;
use ring::digest;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, assert_problem};

fn md5_b64(data: &[u8]) -> String {
    use md5::Digest;
    data_encoding::BASE64.encode(&md5::Md5::digest(data))
}

fn sha256_hex(data: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(digest::digest(&digest::SHA256, data).as_ref())
}

pub async fn put(app: &TestApp, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.put(app.url(path)).bearer_auth(&app.admin_key).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
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
    let got = app
        .client
        .get(app.url(&location))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.text().await.unwrap(), "본문");
    // The form upload says the same.
    let form = reqwest::multipart::Form::new().text("key", "폴더/a b?.txt").part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"),
    );
    let res = app
        .client
        .post(app.url("/api/v1/blobs/web"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
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

    let get = |h: Option<(&'static str, String)>| {
        let mut req = app.client.get(app.url(path)).bearer_auth(&app.admin_key);
        if let Some((k, v)) = h {
            req = req.header(k, v);
        }
        req.send()
    };
    let res = get(None).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], etag.as_str());
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename*=UTF-8''")
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());

    let res = get(Some(("range", "bytes=100-199".into()))).await.unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 100-199/200000");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[100..200]);
    let res = get(Some(("range", "bytes=999999-".into()))).await.unwrap();
    assert_eq!(res.headers()["content-range"], "bytes */200000");
    assert_problem(res, 416, "range_not_satisfiable").await;
    let res = get(Some(("if-none-match", etag.clone()))).await.unwrap();
    assert_eq!(res.status(), 304);
    let head = app
        .client
        .head(app.url(path))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
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
    let res = app
        .client
        .get(app.url("/api/v1/blobs/client/bad-md5"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "object_not_found").await;

    let res = app
        .client
        .delete(app.url(path))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .client
        .delete(app.url(path))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
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
        .client
        .put(app.url("/api/v1/blobs/big/artefacts/model.bin"))
        .bearer_auth(&app.admin_key)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["sha256"], expected);
    let res = app
        .client
        .get(app.url("/api/v1/blobs/big/artefacts/model.bin"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
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
        .client
        .put(app.url("/api/v1/blobs/img/b.png"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "image/png")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_problem(res, 413, "payload_too_large").await;
    let res = app
        .client
        .get(app.url("/api/v1/blobs/img/b.png"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
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

/// Sends a request line as written, without any client normalising the path.
async fn raw_put(app: &TestApp, raw_path: &str) -> String {
    let addr = app.address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "PUT {raw_path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
        app.admin_key
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rules_are_enforced_not_rewritten() {
    let app = TestApp::spawn().await;
    for (path, rule) in [
        ("/api/v1/blobs/web/a/../b", "dot_segment"),
        ("/api/v1/blobs/web/a/%2e%2e/b", "dot_segment"),
        ("/api/v1/blobs/web/./a", "dot_segment"),
        ("/api/v1/blobs/web/a//b", "empty_segment"),
        ("/api/v1/blobs/web//etc/passwd", "leading_slash"),
        ("/api/v1/blobs/web/a%5Cb", "backslash"),
        ("/api/v1/blobs/web/a%00b", "control_character"),
        ("/api/v1/blobs/web/a/", "empty_segment"),
    ] {
        let res = raw_put(&app, path).await;
        assert!(res.starts_with("HTTP/1.1 400"), "{path}: {res}");
        assert!(res.contains(&format!("rule: {rule}")), "{path}: {res}");
    }
    let list: Value = app.get_json("/api/v1/blobs/web").await;
    assert_eq!(list["objects"], json!([]), "nothing was stored under another name");
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_are_per_namespace() {
    let app = TestApp::spawn().await;
    put(&app, "/api/v1/blobs/client/doc.txt", b"hi".to_vec(), &[]).await;
    let (_, client_reader) = app.create_key(&["blobs:read:client"]).await;
    let (_, ai_writer) = app.create_key(&["blobs:write:ai"]).await;
    let (_, all_reader) = app.create_key(&["blobs:read"]).await;
    let get = |ns: &str, key: &str| {
        app.client
            .get(app.url(&format!("/api/v1/blobs/{ns}/doc.txt")))
            .bearer_auth(key.to_owned())
            .send()
    };
    assert_eq!(get("client", &client_reader).await.unwrap().status(), 200);
    assert_problem(get("ai", &client_reader).await.unwrap(), 403, "insufficient_scope").await;
    assert_eq!(get("client", &all_reader).await.unwrap().status(), 200);
    assert_problem(get("client", &ai_writer).await.unwrap(), 403, "insufficient_scope").await;
    let write = |ns: &str, key: &str| {
        app.client
            .put(app.url(&format!("/api/v1/blobs/{ns}/new.txt")))
            .bearer_auth(key.to_owned())
            .body("x")
            .send()
    };
    assert_eq!(write("ai", &ai_writer).await.unwrap().status(), 201);
    assert_problem(write("web", &ai_writer).await.unwrap(), 403, "insufficient_scope").await;
    assert_problem(
        write("client", &client_reader).await.unwrap(),
        403,
        "insufficient_scope",
    )
    .await;
    let res = app
        .client
        .put(app.url("/api/v1/blobs/ai/anon.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "missing_credentials").await;
    let res = app
        .client
        .get(app.url("/api/v1/blobs/client"))
        .bearer_auth(&ai_writer)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "insufficient_scope").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls_work_without_a_key_and_refuse_tampering() {
    let app = TestApp::spawn().await;
    let presign = |body: Value| {
        app.client
            .post(app.url("/api/v1/blobs/ai/presign"))
            .bearer_auth(&app.admin_key)
            .json(&body)
            .send()
    };
    let p: Value =
        presign(json!({"key": "uploads/데이터.csv", "method": "PUT", "expires_in": 120, "content_type": "text/csv", "content_length": 8}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let put_url = p["url"].as_str().unwrap().to_owned();
    assert_eq!(p["headers"]["Content-Type"], "text/csv");
    let plain = reqwest::Client::new();
    let res = plain
        .put(&put_url)
        .header("content-type", "text/csv")
        .body("a,b\n1,2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = plain
        .put(&put_url)
        .header("content-type", "text/html")
        .body("<x>")
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "signature_invalid").await;

    let p: Value = presign(json!({"key": "uploads/데이터.csv", "method": "get"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let get_url = p["url"].as_str().unwrap().to_owned();
    let res = plain.get(&get_url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "a,b\n1,2\n");
    let res = plain.put(&get_url).body("x").send().await.unwrap();
    assert_problem(res, 403, "signature_invalid").await;

    for altered in [
        get_url.replace("uploads/", "other/"),
        get_url.replace("X-EB-Expires=", "X-EB-Expires=9"),
        // The signature's last hex digit changed (to another digit, whatever it was).
        format!(
            "{}{}",
            &get_url[..get_url.len() - 1],
            if get_url.ends_with('0') { '1' } else { '0' }
        ),
    ] {
        let res = plain.get(&altered).send().await.unwrap();
        assert!(
            matches!(res.status().as_u16(), 403 | 404),
            "{altered}: {}",
            res.status()
        );
        if res.status() == 403 {
            assert_problem(res, 403, "signature_invalid").await;
        }
    }
    let p: Value = presign(json!({"key": "uploads/데이터.csv", "method": "GET", "expires_in": 1}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = plain.get(p["url"].as_str().unwrap()).send().await.unwrap();
    let problem = assert_problem(res, 403, "signature_invalid").await;
    assert!(problem["detail"].as_str().unwrap().contains("expired"));

    let res = presign(json!({"key": "x", "method": "DELETE"})).await.unwrap();
    assert_problem(res, 422, "invalid_field").await;
    let res = presign(json!({"key": "x", "method": "GET", "expires_in": 999999999}))
        .await
        .unwrap();
    assert_problem(res, 422, "invalid_field").await;
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
    let get = |q: &str| {
        app.client
            .get(app.url(&format!("/api/v1/blobs/web{q}")))
            .bearer_auth(&app.admin_key)
            .send()
    };
    let top: Value = get("?delimiter=/").await.unwrap().json().await.unwrap();
    let keys: Vec<&str> = top["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a.txt", "z.txt"]);
    assert_eq!(top["common_prefixes"], json!(["photos/"]));
    let photos: Value = get("?prefix=photos/&delimiter=/").await.unwrap().json().await.unwrap();
    assert_eq!(photos["objects"].as_array().unwrap().len(), 2);
    assert_eq!(photos["common_prefixes"], json!(["photos/2026/"]));
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = get(&format!("?limit=2{cursor}")).await.unwrap().json().await.unwrap();
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
    assert_problem(get("?limit=0").await.unwrap(), 400, "invalid_query").await;
    assert_problem(get("?delimiter=,").await.unwrap(), 400, "invalid_query").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_s3_backend_serves_the_same_api_and_presigns_with_sigv4() {
    let s3 = blob_store::testing::S3TestServer::start().await;
    let app = s3_app(&s3, &[("S3_PART_SIZE_MB", "5")]).await;
    // 12 MiB streamed: three parts of a multipart upload.
    let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let res = put(
        &app,
        "/api/v1/blobs/ai/models/v2/weights.bin",
        data.clone(),
        &[("x-checksum-sha256", &sha256_hex(&data))],
    )
    .await;
    assert_eq!(res.status(), 201);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(
        (stored["size"].as_u64(), stored["sha256"].as_str()),
        (Some(data.len() as u64), Some(sha256_hex(&data).as_str()))
    );
    let object = s3
        .dir
        .path()
        .join(blob_store::testing::BUCKET)
        .join("ai/models/v2/weights.bin");
    assert_eq!(
        std::fs::metadata(&object).unwrap().len(),
        data.len() as u64,
        "stored under the namespace prefix"
    );

    let res = app
        .client
        .get(app.url("/api/v1/blobs/ai/models/v2/weights.bin"))
        .bearer_auth(&app.admin_key)
        .header("range", "bytes=5242878-5242881")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[5_242_878..5_242_882]);

    let res = put(
        &app,
        "/api/v1/blobs/ai/small.txt",
        b"hello".to_vec(),
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(res.status(), 201);
    let list: Value = app.get_json("/api/v1/blobs/ai?delimiter=/").await;
    assert_eq!(list["common_prefixes"], json!(["models/"]));
    assert_eq!(list["objects"][0]["key"], "small.txt");

    // A SigV4 URL from S3 itself, used by a plain client straight against the S3 server.
    let p: Value = app
        .client
        .post(app.url("/api/v1/blobs/ai/presign"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"key": "small.txt", "method": "GET", "expires_in": 300}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = p["url"].as_str().unwrap();
    assert!(
        url.starts_with(&s3.endpoint) && url.contains("X-Amz-Signature="),
        "{url}"
    );
    let plain = reqwest::Client::new();
    let res = plain.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello");
    let tampered = url.replace("small.txt", "other.txt");
    assert_eq!(plain.get(&tampered).send().await.unwrap().status(), 403);

    let res = app
        .client
        .delete(app.url("/api/v1/blobs/ai/small.txt"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .client
        .get(app.url("/api/v1/blobs/ai/small.txt"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "object_not_found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_forms_upload_files() {
    let app = TestApp::spawn().await;
    let form = reqwest::multipart::Form::new().text("key", "forms/사진.png").part(
        "file",
        reqwest::multipart::Part::bytes(vec![0x89, b'P', b'N', b'G'])
            .file_name("ignored.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let res = app
        .client
        .post(app.url("/api/v1/blobs/web"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(
        (
            stored["key"].as_str(),
            stored["content_type"].as_str(),
            stored["size"].as_u64()
        ),
        (Some("forms/사진.png"), Some("image/png"), Some(4))
    );
    let res = app
        .client
        .get(app.url("/api/v1/blobs/web/forms/%EC%82%AC%EC%A7%84.png"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-disposition"].to_str().unwrap().split(';').next(),
        Some("inline"),
        "a safe image is shown inline"
    );

    // Without a key field the file name is the key; a bad name is refused by the key rules.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"a,b".to_vec())
            .file_name("report.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let res = app
        .client
        .post(app.url("/api/v1/blobs/web"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["key"], "report.csv");
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"x".to_vec()).file_name(".."));
    let res = app
        .client
        .post(app.url("/api/v1/blobs/web"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "invalid_key").await;
    let form = reqwest::multipart::Form::new().text("note", "hi");
    let res = app
        .client
        .post(app.url("/api/v1/blobs/web"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "invalid_form").await;
    let res = app
        .client
        .post(app.url("/api/v1/blobs/web"))
        .bearer_auth(&app.admin_key)
        .body("not a form")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

/// Sends `method raw_path` as written (with the admin key when `auth`), returning the
/// status line's code and the body.
async fn raw_request(app: &TestApp, method: &str, raw_path: &str, auth: bool) -> (u16, String) {
    let addr = app.address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = if auth {
        format!("Authorization: Bearer {}\r\n", app.admin_key)
    } else {
        String::new()
    };
    let req = format!(
        "{method} {raw_path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 1\r\nConnection: close\r\n\r\nx"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

/// `%ff%fe` and `%fe%ff` both decoded lossily would be the same key (two U+FFFD): keys
/// that are not UTF-8 are refused wherever a key arrives, naming the rule.
#[tokio::test(flavor = "multi_thread")]
async fn keys_that_are_not_utf8_are_refused_not_collided() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        ("PUT", "/api/v1/blobs/web/%ff%fe"),
        ("PUT", "/api/v1/blobs/web/%fe%ff"),
        ("PUT", "/api/v1/blobs/web/dir/a%C3"),
        ("GET", "/api/v1/blobs/web/%ff%fe"),
        ("HEAD", "/api/v1/blobs/web/%ff%fe"),
        ("DELETE", "/api/v1/blobs/web/%ff%fe"),
    ] {
        let (status, res) = raw_request(&app, method, path, true).await;
        assert_eq!(status, 400, "{method} {path}: {res}");
        if method != "HEAD" {
            assert!(
                res.contains("invalid_key") && res.contains("rule: not_utf8"),
                "{method} {path}: {res}"
            );
        }
    }
    let res = app
        .client
        .get(app.url("/api/v1/blobs/web/%EF%BF%BD%EF%BF%BD"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "object_not_found").await;

    // Query parameters: a listing prefix, and the parameters of a signed URL.
    let res = app
        .client
        .get(app.url("/api/v1/blobs/web?prefix=%ff"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 400, "invalid_query").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("rule: not_utf8"),
        "{problem}"
    );
    put(&app, "/api/v1/blobs/web/a.txt", b"1".to_vec(), &[]).await;
    let p: Value = app
        .client
        .post(app.url("/api/v1/blobs/web/presign"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"key": "a.txt", "method": "GET"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = p["url"].as_str().unwrap();
    let plain = reqwest::Client::new();
    for altered in [
        url.replace("/a.txt?", "/%ff%fe?"),
        format!("{url}&X-EB-Content-Type=%ff"),
    ] {
        let res = plain.get(&altered).send().await.unwrap();
        let problem = assert_problem(
            res,
            400,
            if altered.contains("%ff%fe") {
                "invalid_key"
            } else {
                "invalid_query"
            },
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains("rule: not_utf8"),
            "{altered}: {problem}"
        );
    }

    // Forms: a key field of other bytes, a file name of other bytes.
    let form = reqwest::multipart::Form::new()
        .part("key", reqwest::multipart::Part::bytes(vec![0xff, 0xfe]))
        .part("file", reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("f"));
    let res = app
        .client
        .post(app.url("/api/v1/blobs/web"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 400, "invalid_key").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("rule: not_utf8"),
        "{problem}"
    );
    let mut raw_form = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".to_vec();
    raw_form.extend_from_slice(&[0xff, 0xfe]);
    raw_form.extend_from_slice(b"\"\r\n\r\nx\r\n--b--\r\n");
    let res = app
        .client
        .post(app.url("/api/v1/blobs/web"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(raw_form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Presign requests: JSON is UTF-8, and lone surrogates are no characters.
    for body in [
        b"{\"key\":\"\xff\xfe\",\"method\":\"GET\"}".to_vec(),
        br#"{"key":"\udcff\udcfe","method":"GET"}"#.to_vec(),
    ] {
        let res = app
            .client
            .post(app.url("/api/v1/blobs/web/presign"))
            .bearer_auth(&app.admin_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }

    let list: Value = app.get_json("/api/v1/blobs/web").await;
    assert_eq!(list["objects"].as_array().unwrap().len(), 1, "only a.txt: {list}");
}

/// The parts of a problem that must not differ between two answers (its request id and
/// instance always do).
async fn problem_shape(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let mut body: Value = if status == 200 || res.headers().get("content-type").is_none() {
        Value::Null
    } else {
        res.json().await.unwrap_or(Value::Null)
    };
    if let Some(o) = body.as_object_mut() {
        o.remove("request_id");
        o.remove("instance");
    }
    (status, body)
}

/// Without an API key, a signed-URL parameter must not let a caller tell namespaces that
/// exist from others: every route answers the same status, code and body either way.
#[tokio::test(flavor = "multi_thread")]
async fn signed_url_probes_do_not_reveal_namespaces() {
    let app = TestApp::spawn().await;
    put(&app, "/api/v1/blobs/client/doc.txt", b"hi".to_vec(), &[]).await;
    let plain = reqwest::Client::new();
    let far = chrono::Utc::now().timestamp() + 3600;
    for query in [
        "X-EB-Signature=x".to_owned(),
        "X-EB-Signature=".to_owned(),
        format!("X-EB-Method=GET&X-EB-Expires={far}&X-EB-Signature={}", "00".repeat(32)),
        format!("X-EB-Method=PUT&X-EB-Expires={far}&X-EB-Signature=zz"),
        format!("X-EB-Method=GET&X-EB-Expires=1&X-EB-Signature={}", "00".repeat(32)),
    ] {
        for (method, path) in [
            ("GET", "{ns}/doc.txt"),
            ("HEAD", "{ns}/doc.txt"),
            ("PUT", "{ns}/doc.txt"),
            ("DELETE", "{ns}/doc.txt"),
            ("GET", "{ns}"),
            ("POST", "{ns}/presign"),
            ("POST", "{ns}"),
        ] {
            let mut answers = Vec::new();
            for ns in ["client", "nope"] {
                let url = app.url(&format!("/api/v1/blobs/{}?{query}", path.replace("{ns}", ns)));
                let req = plain.request(method.parse().unwrap(), url);
                let res = req.body("x").send().await.unwrap();
                answers.push(problem_shape(res).await);
            }
            assert_eq!(answers[0], answers[1], "{method} {path}?{query}");
            assert!(
                matches!(answers[0].0, 401 | 403 | 400),
                "{method} {path}?{query}: {:?}",
                answers[0]
            );
        }
    }
}

const LIMITED: &str = r#"[{"name":"img","max_size":1000,"allowed_types":["image/*"]}]"#;

/// The presign request declares an upload's size and type; both are checked against the
/// namespace and bound into the URL. Returns the refusals' checks done and the URL of
/// a 4-byte `image/png` upload to `key`, with the headers it must send.
async fn presign_limited_put(app: &TestApp, key: &str) -> (String, Vec<(String, String)>) {
    let presign = |body: Value| {
        app.client
            .post(app.url("/api/v1/blobs/img/presign"))
            .bearer_auth(&app.admin_key)
            .json(&body)
            .send()
    };
    let res = presign(json!({"key": key, "method": "PUT", "content_type": "image/png"}))
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "invalid_field").await;
    assert_eq!(problem["field"], "content_length", "{problem}");
    let res =
        presign(json!({"key": key, "method": "PUT", "content_type": "image/png", "content_length": 5_000_000_000u64}))
            .await
            .unwrap();
    assert_problem(res, 413, "payload_too_large").await;
    let res = presign(json!({"key": key, "method": "PUT", "content_type": "text/html", "content_length": 4}))
        .await
        .unwrap();
    assert_problem(res, 415, "content_type_not_allowed").await;
    let res =
        presign(json!({"key": key, "method": "PUT", "content_type": "application/octet-stream", "content_length": 4}))
            .await
            .unwrap();
    assert_problem(res, 415, "content_type_not_allowed").await;
    // Without a type, the key's (image/png here) is declared.
    let res = presign(json!({"key": key, "method": "PUT", "content_length": 4}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let declared = res.json::<Value>().await.unwrap()["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    assert_eq!(declared, Some(json!("image/png")));
    let res = presign(json!({"key": key, "method": "PUT", "content_type": "image/png", "content_length": 4}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let p: Value = res.json().await.unwrap();
    let headers: Vec<(String, String)> = p["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_owned()))
        .collect();
    assert!(
        headers.contains(&("content-type".into(), "image/png".into())),
        "{headers:?}"
    );
    assert!(headers.contains(&("content-length".into(), "4".into())), "{headers:?}");
    (p["url"].as_str().unwrap().to_owned(), headers)
}

/// Uploads `body` with `content_type` through a signed URL, as a browser would.
async fn put_signed(url: &str, content_type: &str, body: &'static [u8]) -> reqwest::Response {
    reqwest::Client::new()
        .put(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The presign is in the audit trail, with what it allows.
async fn assert_presign_recorded(app: &TestApp, key: &str) {
    let events: Value = app.get_json("/api/v1/events?type=blob.presigned").await;
    let items = events["items"].as_array().unwrap();
    let e = items
        .iter()
        .find(|e| e["subject"] == format!("blob:img/{key}"))
        .unwrap_or_else(|| panic!("{events}"));
    assert!(e["actor"].as_str().unwrap().starts_with("api_key:"), "{e}");
    assert_eq!(
        (
            &e["data"]["method"],
            &e["data"]["content_type"],
            &e["data"]["content_length"]
        ),
        (&json!("PUT"), &json!("image/png"), &json!(4)),
        "{e}"
    );
}

/// Gateway-signed upload URLs (local backend) carry the declared size and type: an upload
/// of another length or type is refused, the declared one is stored.
#[tokio::test(flavor = "multi_thread")]
async fn presigned_uploads_are_bound_to_the_declared_size_and_type() {
    let app = TestApp::with_vars(&[("BLOB_NAMESPACES", LIMITED)], None).await;
    let (url, _) = presign_limited_put(&app, "pic.png").await;
    for (content_type, body) in [
        ("image/png", &b"12345"[..]),
        ("image/png", &b"123"[..]),
        ("image/gif", &b"1234"[..]),
    ] {
        let res = put_signed(&url, content_type, body).await;
        assert_problem(res, 403, "signature_invalid").await;
    }
    // Chunked (no Content-Length): the size cannot be held to the signed one.
    let res = reqwest::Client::new()
        .put(&url)
        .header("content-type", "image/png")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter([Ok::<
            _,
            std::io::Error,
        >(
            vec![0u8; 4]
        )])))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "signature_invalid").await;
    let res = put_signed(&url, "image/png", b"\x89PNG").await;
    assert_eq!(res.status(), 201);
    let res = app
        .client
        .get(app.url("/api/v1/blobs/img/pic.png"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"\x89PNG");
    assert_presign_recorded(&app, "pic.png").await;
}

/// S3-signed upload URLs (SigV4) sign `Content-Length` and `Content-Type`: the test peer
/// (s3s) recomputes the signature from the headers the request sends, so an upload of
/// another length or type is refused by S3 itself, and the declared one is stored.
#[tokio::test(flavor = "multi_thread")]
async fn s3_presigned_uploads_are_bound_to_the_declared_size_and_type() {
    let s3 = blob_store::testing::S3TestServer::start().await;
    let app = s3_app(&s3, &[("BLOB_NAMESPACES", LIMITED)]).await;
    let (url, _) = presign_limited_put(&app, "pic.png").await;
    assert!(url.starts_with(&s3.endpoint), "{url}");
    let signed_headers = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "X-Amz-SignedHeaders")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let signed: Vec<&str> = signed_headers.split(';').collect();
    assert!(
        signed.contains(&"content-length") && signed.contains(&"content-type"),
        "{signed_headers}"
    );
    for (content_type, body) in [
        ("image/png", &b"12345"[..]),
        ("image/png", &b"123"[..]),
        ("image/gif", &b"1234"[..]),
        ("text/html", &b"<p>x"[..]),
    ] {
        let res = put_signed(&url, content_type, body).await;
        assert_eq!(res.status(), 403, "{content_type} {body:?}");
        let answer = res.text().await.unwrap();
        assert!(
            answer.contains("SignatureDoesNotMatch"),
            "{content_type} {body:?}: {answer}"
        );
    }
    let object = s3.dir.path().join(blob_store::testing::BUCKET).join("img/pic.png");
    assert!(!object.exists(), "nothing stored by a refused upload");
    let res = put_signed(&url, "image/png", b"\x89PNG").await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(std::fs::read(&object).unwrap(), b"\x89PNG");
    assert_presign_recorded(&app, "pic.png").await;
}

/// Checks a GET answer is one whole upload of `uploads`, with its own length and ETag.
async fn assert_whole_upload(res: reqwest::Response, uploads: &[Vec<u8>], when: &str) {
    assert_eq!(res.status(), 200, "{when}");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let length: usize = res.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let body = res.bytes().await;
    assert!(body.is_ok(), "{when}: the body was cut short of its {length} bytes");
    let body = body.unwrap();
    assert!(
        uploads.iter().any(|u| u.as_slice() == body.as_ref()),
        "{when}: {} bytes that are no single upload",
        body.len()
    );
    assert_eq!(length, body.len(), "{when}: Content-Length of another upload");
    use md5::Digest;
    let md5 = data_encoding::HEXLOWER.encode(&md5::Md5::digest(&body));
    assert_eq!(etag, format!("\"{md5}\""), "{when}: ETag of another upload");
}

/// Eight uploads of different sizes to one key at once, with downloads racing them,
/// round after round: every download, and the object after each round, is one whole
/// upload whose Content-Length and ETag are its own.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_to_one_key_leave_one_whole_object() {
    let app = TestApp::spawn().await;
    let uploads: Vec<Vec<u8>> = (0..8usize)
        .map(|w| (0..1000 + w * 37_000).map(|i| (w * 31 + i % 7) as u8).collect())
        .collect();
    let path = "/api/v1/blobs/client/race/object.bin";
    assert_eq!(put(&app, path, uploads[0].clone(), &[]).await.status(), 201);
    let get = || app.client.get(app.url(path)).bearer_auth(&app.admin_key).send();
    for round in 0..8 {
        let puts = futures_util::future::join_all(uploads.iter().map(|u| put(&app, path, u.clone(), &[])));
        let gets = futures_util::future::join_all((0..8).map(|_| get()));
        let (puts, gets) = futures_util::join!(puts, gets);
        for res in puts {
            assert_eq!(res.status(), 201);
        }
        for res in gets {
            assert_whole_upload(res.unwrap(), &uploads, &format!("a download racing round {round}")).await;
        }
        assert_whole_upload(get().await.unwrap(), &uploads, &format!("after round {round}")).await;
    }
}

/// A URL signed as the version before `eb-blob-v2` signed it, byte for byte: an HMAC-SHA256
/// under `SECRET_KEY` of `method\nnamespace\nkey\nexpires\ncontent_type`, with the query
/// that version's presign built (`X-EB-Content-Type` only when not empty, no
/// `X-EB-Content-Length`).
fn pre_v2_url(app: &TestApp, method: &str, ns: &str, key: &str, expires: i64, content_type: &str) -> String {
    let signing = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, crate::helpers::SECRET.as_bytes());
    let tag = ring::hmac::sign(
        &signing,
        format!("{method}\n{ns}\n{key}\n{expires}\n{content_type}").as_bytes(),
    );
    let path_key: String = key
        .split('/')
        .map(|s| {
            url::form_urlencoded::byte_serialize(s.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/");
    let mut url = url::Url::parse(&app.url(&format!("/api/v1/blobs/{ns}/{path_key}"))).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("X-EB-Method", method)
            .append_pair("X-EB-Expires", &expires.to_string());
        if !content_type.is_empty() {
            q.append_pair("X-EB-Content-Type", content_type);
        }
        q.append_pair("X-EB-Signature", &data_encoding::HEXLOWER.encode(tag.as_ref()));
    }
    url.into()
}

/// URLs the previous version signed (valid up to 7 days) keep working after the upgrade
/// for downloads; its upload URLs, never bound to a size, are refused with a detail saying
/// to sign again; an altered one is refused.
#[tokio::test(flavor = "multi_thread")]
async fn download_urls_signed_before_the_upgrade_still_work() {
    let app = TestApp::spawn().await;
    put(
        &app,
        "/api/v1/blobs/ai/uploads/데이터 1.csv",
        b"a,b\n1,2\n".to_vec(),
        &[],
    )
    .await;
    let plain = reqwest::Client::new();
    let expires = chrono::Utc::now().timestamp() + 6 * 24 * 3600;
    let get_url = pre_v2_url(&app, "GET", "ai", "uploads/데이터 1.csv", expires, "");
    let res = plain.get(&get_url).send().await.unwrap();
    assert_eq!(res.status(), 200, "a GET URL signed before the upgrade downloads");
    assert_eq!(res.text().await.unwrap(), "a,b\n1,2\n");
    let res = plain.head(&get_url).send().await.unwrap();
    assert_eq!(res.status(), 200, "and answers HEAD");

    for (content_type, body) in [("text/csv", "x,y\n"), ("", "x")] {
        let put_url = pre_v2_url(&app, "PUT", "ai", "uploads/데이터 1.csv", expires, content_type);
        let mut req = plain.put(&put_url).body(body);
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        let problem = assert_problem(req.send().await.unwrap(), 403, "signature_invalid").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("sign it again"),
            "an upload URL signed before the upgrade is refused, saying why: {problem}"
        );
    }
    let res = app
        .client
        .get(app.url("/api/v1/blobs/ai/uploads/%EB%8D%B0%EC%9D%B4%ED%84%B0%201.csv"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.text().await.unwrap(),
        "a,b\n1,2\n",
        "the refused uploads wrote nothing"
    );

    let last = get_url.chars().last().unwrap();
    for altered in [
        get_url.replace("uploads/", "other/"),
        get_url.replace("/ai/", "/web/"),
        get_url.replace("X-EB-Expires=", "X-EB-Expires=9"),
        get_url.replace("X-EB-Method=GET", "X-EB-Method=PUT"),
        format!("{get_url}&X-EB-Content-Type=text%2Fcsv"),
        format!("{get_url}&X-EB-Content-Length=8"),
        format!(
            "{}{}",
            &get_url[..get_url.len() - 1],
            if last == '0' { '1' } else { '0' }
        ),
        pre_v2_url(&app, "GET", "ai", "uploads/데이터 1.csv", 1, ""),
    ] {
        let res = plain.get(&altered).send().await.unwrap();
        assert_problem(res, 403, "signature_invalid").await;
    }
    // A GET URL used to upload is refused whichever format signed it.
    let res = plain.put(&get_url).body("x").send().await.unwrap();
    assert_problem(res, 403, "signature_invalid").await;
}

/// A key without a namespace's scope gets the same answer whether or not the namespace
/// exists: the scope is checked for the name before the namespace is looked up.
#[tokio::test(flavor = "multi_thread")]
async fn key_holders_cannot_tell_missing_namespaces_from_others() {
    let app = TestApp::spawn().await;
    put(&app, "/api/v1/blobs/client/doc.txt", b"hi".to_vec(), &[]).await;
    let (_, reader) = app.create_key(&["blobs:read:web"]).await;
    let (_, writer) = app.create_key(&["blobs:write:web"]).await;
    let form = || {
        reqwest::multipart::Form::new().text("key", "doc.txt").part(
            "file",
            reqwest::multipart::Part::bytes(b"hi".to_vec()).file_name("doc.txt"),
        )
    };
    let mut differing = Vec::new();
    for who in [&reader, &writer] {
        let routes: [(&str, &str, Option<Value>, bool); 7] = [
            ("GET", "{ns}/doc.txt", None, false),
            ("PUT", "{ns}/doc.txt", None, false),
            ("DELETE", "{ns}/doc.txt", None, false),
            ("GET", "{ns}", None, false),
            (
                "POST",
                "{ns}/presign",
                Some(json!({"key": "doc.txt", "method": "GET"})),
                false,
            ),
            (
                "POST",
                "{ns}/presign",
                Some(json!({"key": "doc.txt", "method": "PUT", "content_length": 2})),
                false,
            ),
            ("POST", "{ns}", None, true),
        ];
        for (method, path, json_body, multipart) in routes {
            let mut answers = Vec::new();
            for ns in ["client", "nope"] {
                let url = app.url(&format!("/api/v1/blobs/{}", path.replace("{ns}", ns)));
                let mut req = app.client.request(method.parse().unwrap(), url).bearer_auth(who);
                req = match (&json_body, multipart) {
                    (Some(b), _) => req.json(b),
                    (None, true) => req.multipart(form()),
                    (None, false) if method == "PUT" => req.body("hi"),
                    (None, false) => req,
                };
                // The 403 names the scope asked for, which holds the name the caller
                // sent: compare with that name as a placeholder.
                let (status, body) = problem_shape(req.send().await.unwrap()).await;
                let body: Value = serde_json::from_str(&body.to_string().replace(ns, "{ns}")).unwrap();
                answers.push((status, body));
            }
            let label = format!(
                "{method} {path} {json_body:?} with {}",
                if who == &reader {
                    "blobs:read:web"
                } else {
                    "blobs:write:web"
                }
            );
            if answers[0] != answers[1] || answers[0].0 != 403 || answers[0].1["code"] != "insufficient_scope" {
                differing.push(format!("{label}: client {:?}, nope {:?}", answers[0], answers[1]));
            }
        }
    }
    assert!(
        differing.is_empty(),
        "each answer is the same 403 insufficient_scope for both:\n{}",
        differing.join("\n")
    );
}

/// `If-Match`, `If-None-Match` and `If-Range` on one object of `app`'s store: a write or
/// delete whose precondition fails changes nothing, and a resumed download of a version
/// that has since changed gets the whole new object, never a slice of it.
async fn conditional_requests(app: &TestApp) {
    let path = "/api/v1/blobs/client/cond/report.bin";
    let send = |method: reqwest::Method, headers: &[(&str, &str)]| {
        let mut req = app.client.request(method, app.url(path)).bearer_auth(&app.admin_key);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let body_of = |res: reqwest::Response| async move { res.bytes().await.unwrap().to_vec() };

    // If-Match on a missing object: nothing created.
    let res = put(app, path, b"never".to_vec(), &[("if-match", "*")]).await;
    assert_problem(res, 412, "precondition_failed").await;
    assert_eq!(send(reqwest::Method::GET, &[]).await.unwrap().status(), 404);

    let v1 = b"0123456789abcdefghij".to_vec();
    let res = put(app, path, v1.clone(), &[]).await;
    assert_eq!(res.status(), 201);
    let etag1 = res.headers()["etag"].to_str().unwrap().to_owned();
    let weak1 = format!("W/{etag1}");

    // Create-only refuses to overwrite.
    let res = put(app, path, b"other".to_vec(), &[("if-none-match", "*")]).await;
    assert_problem(res, 412, "object_exists").await;

    // Another ETag, or the current one marked weak: 412 with the current ETag, unchanged.
    for tag in ["\"deadbeef\"", weak1.as_str()] {
        let res = put(app, path, b"lost update".to_vec(), &[("if-match", tag)]).await;
        assert_eq!(
            res.headers().get("etag").map(|v| v.to_str().unwrap()),
            Some(etag1.as_str()),
            "{tag}"
        );
        assert_problem(res, 412, "precondition_failed").await;
        let res = send(reqwest::Method::DELETE, &[("if-match", tag)]).await.unwrap();
        assert_problem(res, 412, "precondition_failed").await;
        let res = send(reqwest::Method::GET, &[]).await.unwrap();
        assert_eq!(body_of(res).await, v1, "{tag}: nothing changed");
    }
    let res = put(app, path, b"x".to_vec(), &[("if-match", "deadbeef")]).await;
    assert_problem(res, 400, "invalid_precondition").await;

    // GET: If-Match fails with 412, If-None-Match (weak comparison) gives 304.
    let res = send(reqwest::Method::GET, &[("if-match", "\"deadbeef\"")])
        .await
        .unwrap();
    assert_problem(res, 412, "precondition_failed").await;
    let res = send(reqwest::Method::GET, &[("if-match", &etag1)]).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = send(reqwest::Method::GET, &[("if-none-match", &weak1)]).await.unwrap();
    assert_eq!(res.status(), 304);

    // If-Range with the current ETag keeps the slice.
    let res = send(reqwest::Method::GET, &[("range", "bytes=10-"), ("if-range", &etag1)])
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 10-19/20");
    assert_eq!(body_of(res).await, &v1[10..]);

    // The right ETag (in a list) replaces.
    let v2 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ".to_vec();
    let res = put(
        app,
        path,
        v2.clone(),
        &[("if-match", &format!("\"deadbeef\", {etag1}"))],
    )
    .await;
    assert_eq!(res.status(), 201);
    let etag2 = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(etag1, etag2);
    let res = send(reqwest::Method::GET, &[]).await.unwrap();
    let last_modified = res.headers()["last-modified"].to_str().unwrap().to_owned();
    assert_eq!(body_of(res).await, v2);

    // Resuming the old version: the whole new object, not its tail after the old head.
    for validator in [etag1.as_str(), &format!("W/{etag2}"), &last_modified] {
        let res = send(reqwest::Method::GET, &[("range", "bytes=10-"), ("if-range", validator)])
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{validator}");
        assert!(res.headers().get("content-range").is_none(), "{validator}");
        assert_eq!(body_of(res).await, v2, "{validator}");
    }
    let res = send(reqwest::Method::HEAD, &[("range", "bytes=10-"), ("if-range", &etag1)])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = send(reqwest::Method::GET, &[("range", "bytes=10-"), ("if-range", &etag2)])
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(body_of(res).await, &v2[10..]);

    // `*` replaces whatever exists.
    let v3 = b"third".to_vec();
    let res = put(app, path, v3.clone(), &[("if-match", "*")]).await;
    assert_eq!(res.status(), 201);
    let etag3 = res.headers()["etag"].to_str().unwrap().to_owned();

    // DELETE: an old ETag fails and keeps the object; the current one deletes.
    let res = send(reqwest::Method::DELETE, &[("if-match", &etag2)]).await.unwrap();
    assert_problem(res, 412, "precondition_failed").await;
    let res = send(reqwest::Method::GET, &[]).await.unwrap();
    assert_eq!(body_of(res).await, v3);
    let res = send(reqwest::Method::DELETE, &[("if-match", &etag3)]).await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(send(reqwest::Method::GET, &[]).await.unwrap().status(), 404);
    let res = send(reqwest::Method::DELETE, &[("if-match", "*")]).await.unwrap();
    assert_problem(res, 412, "precondition_failed").await;

    // Create-only creates once gone.
    let res = put(app, path, v1.clone(), &[("if-none-match", "*")]).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_requests_on_the_local_store() {
    let app = TestApp::spawn().await;
    conditional_requests(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_requests_on_s3() {
    let s3 = blob_store::testing::S3TestServer::start().await;
    let app = s3_app(&s3, &[]).await;
    conditional_requests(&app).await;
}
