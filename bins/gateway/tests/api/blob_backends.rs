//! Storage over HTTP on the S3 backend, browser forms, concurrent uploads, and
//! conditional requests on both backends.

use serde_json::{Value, json};

use crate::blobs::{put, s3_app, sha256_hex};
use crate::helpers::{Go, TestApp, assert_problem, delete, get, send_json};
use reqwest::Method;

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
        .admin(Method::GET, "/api/v1/blobs/ai/models/v2/weights.bin")
        .header("range", "bytes=5242878-5242881")
        .go()
        .await;
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
    let p: Value = send_json(
        &app,
        Method::POST,
        "/api/v1/blobs/ai/presign",
        &json!({"key": "small.txt", "method": "GET", "expires_in": 300}),
    )
    .await
    .json()
    .await
    .unwrap();
    let url = p["url"].as_str().unwrap();
    assert!(
        url.starts_with(&s3.endpoint) && url.contains("X-Amz-Signature="),
        "{url}"
    );
    let plain = reqwest::Client::new();
    let res = plain.get(url).go().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello");
    let tampered = url.replace("small.txt", "other.txt");
    assert_eq!(plain.get(&tampered).go().await.status(), 403);

    let res = delete(&app, "/api/v1/blobs/ai/small.txt").await;
    assert_eq!(res.status(), 204);
    let res = get(&app, "/api/v1/blobs/ai/small.txt").await;
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
    let res = app.admin(Method::POST, "/api/v1/blobs/web").multipart(form).go().await;
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
    let res = get(&app, "/api/v1/blobs/web/forms/%EC%82%AC%EC%A7%84.png").await;
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
    let res = app.admin(Method::POST, "/api/v1/blobs/web").multipart(form).go().await;
    assert_eq!(res.json::<Value>().await.unwrap()["key"], "report.csv");
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"x".to_vec()).file_name(".."));
    let res = app.admin(Method::POST, "/api/v1/blobs/web").multipart(form).go().await;
    assert_problem(res, 400, "invalid_key").await;
    let form = reqwest::multipart::Form::new().text("note", "hi");
    let res = app.admin(Method::POST, "/api/v1/blobs/web").multipart(form).go().await;
    assert_problem(res, 400, "invalid_form").await;
    let res = app
        .admin(Method::POST, "/api/v1/blobs/web")
        .body("not a form")
        .go()
        .await;
    assert!(res.status().is_client_error());
    assert_eq!(res.headers()["content-type"], "application/problem+json");
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
    let get = || app.admin(Method::GET, path).go();
    for round in 0..8 {
        let puts = futures_util::future::join_all(uploads.iter().map(|u| put(&app, path, u.clone(), &[])));
        let gets = futures_util::future::join_all((0..8).map(|_| get()));
        let (puts, gets) = futures_util::join!(puts, gets);
        for res in puts {
            assert_eq!(res.status(), 201);
        }
        for res in gets {
            assert_whole_upload(res, &uploads, &format!("a download racing round {round}")).await;
        }
        assert_whole_upload(get().await, &uploads, &format!("after round {round}")).await;
    }
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
