//! Multipart, resumable uploads (`/api/v1/blobs/{namespace}/uploads`) on both backends:
//! the local store (parts through the gateway's signed part URLs) and S3 (parts straight
//! to the in-process S3 server through presigned `UploadPart` URLs).

use md5::Digest;
use reqwest::Method;
use serde_json::{Value, json};

use crate::blobs::{s3_app, sha256_hex};
use crate::helpers::{Go, TestApp, assert_problem};

const MIB: usize = 1024 * 1024;

/// The gateway on the local store (on SQLite, and on MariaDB when one answers) and on S3
/// (with the S3 server kept alive beside it).
async fn backends() -> Vec<(&'static str, TestApp, Option<blob_store::testing::S3TestServer>)> {
    let mut apps: Vec<_> = TestApp::each()
        .await
        .into_iter()
        .map(|app| ("local", app, None))
        .collect();
    let s3 = blob_store::testing::S3TestServer::start().await;
    let on_s3 = s3_app(&s3, &[]).await;
    apps.push(("s3", on_s3, Some(s3)));
    apps
}

/// 10 MiB and a tail of 1,234 bytes, not repeating within a part.
fn object() -> Vec<u8> {
    (0..10 * MIB + 1234).map(|i| ((i * 7 + i / 251) % 256) as u8).collect()
}

fn md5_etag(bytes: &[u8]) -> String {
    let md5: [u8; 16] = md5::Md5::digest(bytes).into();
    format!("\"{}\"", md5.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn create(app: &TestApp, ns: &str, body: Value) -> reqwest::Response {
    app.admin(Method::POST, &format!("/api/v1/blobs/{ns}/uploads"))
        .json(&body)
        .go()
        .await
}

/// PUTs part `number` (1-based) of `upload` with `bytes`, as a client holding only the
/// URL would (no API key); the answer.
async fn put_part(upload: &Value, number: usize, bytes: &[u8]) -> reqwest::Response {
    let part = &upload["parts"][number - 1];
    assert_eq!(part["number"], number);
    assert_eq!(part["method"], "PUT");
    let mut req = reqwest::Client::new()
        .put(part["url"].as_str().unwrap())
        .body(bytes.to_vec());
    if let Some(headers) = part["headers"].as_object() {
        for (k, v) in headers {
            req = req.header(k, v.as_str().unwrap());
        }
    }
    req.go().await
}

/// PUTs part `number` of `data` at its offset and checks the ETag is the part's MD5.
async fn send_part(upload: &Value, number: usize, data: &[u8]) -> String {
    let part = &upload["parts"][number - 1];
    let (offset, size) = (
        part["offset"].as_u64().unwrap() as usize,
        part["size"].as_u64().unwrap() as usize,
    );
    let bytes = &data[offset..offset + size];
    let res = put_part(upload, number, bytes).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, md5_etag(bytes), "each part's ETag is its MD5");
    etag
}

async fn complete(app: &TestApp, upload: &Value, parts: Value) -> reqwest::Response {
    let path = format!(
        "/api/v1/blobs/{}/uploads/{}/complete",
        upload["namespace"].as_str().unwrap(),
        upload["id"].as_str().unwrap()
    );
    app.admin(Method::POST, &path)
        .json(&json!({ "parts": parts }))
        .go()
        .await
}

fn upload_path(upload: &Value) -> String {
    format!(
        "/api/v1/blobs/{}/uploads/{}",
        upload["namespace"].as_str().unwrap(),
        upload["id"].as_str().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_part_upload_completes_and_reads_back_byte_exact() {
    let data = object();
    let sha = sha256_hex(&data);
    for (backend, app, _s3) in backends().await {
        let res = create(
            &app,
            "ai",
            json!({"key": "models/모델 v1.bin", "size": data.len(), "sha256": sha, "part_size": 5 * MIB}),
        )
        .await;
        assert_eq!(res.status(), 201, "{backend}");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let upload: Value = res.json().await.unwrap();
        let id = upload["id"].as_str().unwrap();
        assert!(blob_store::is_upload_id(id) && id.len() == 35, "{backend}: {id}");
        assert_eq!(location, format!("/api/v1/blobs/ai/uploads/{id}"));
        assert_eq!(
            (
                upload["size"].as_u64(),
                upload["part_size"].as_u64(),
                upload["content_type"].as_str(),
                upload["sha256"].as_str(),
            ),
            (
                Some(data.len() as u64),
                Some(5 * MIB as u64),
                Some("application/octet-stream"),
                Some(sha.as_str())
            ),
            "{backend}"
        );
        assert_eq!(upload["received"], json!([]));
        let parts = upload["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 3, "{backend}");
        assert_eq!(
            parts
                .iter()
                .map(|p| (p["offset"].as_u64().unwrap(), p["size"].as_u64().unwrap()))
                .collect::<Vec<_>>(),
            [
                (0, 5 * MIB as u64),
                (5 * MIB as u64, 5 * MIB as u64),
                (10 * MIB as u64, 1234)
            ]
        );
        let url = parts[0]["url"].as_str().unwrap();
        match backend {
            "s3" => assert!(url.contains("X-Amz-Signature=") && url.contains("uploadId="), "{url}"),
            _ => assert!(
                url.contains(&format!("/api/v1/blobs/ai/uploads/{id}/parts/1?")) && url.contains("X-EB-Signature="),
                "{url}"
            ),
        }
        let mut etags = Vec::new();
        for n in 1..=3 {
            etags.push(send_part(&upload, n, &data).await);
        }
        let res = complete(
            &app,
            &upload,
            json!(
                etags
                    .iter()
                    .enumerate()
                    .map(|(i, e)| json!({"number": i + 1, "etag": e}))
                    .collect::<Vec<_>>()
            ),
        )
        .await;
        assert_eq!(res.status(), 201, "{backend}");
        assert_eq!(
            res.headers()["location"],
            "/api/v1/blobs/ai/models/%EB%AA%A8%EB%8D%B8%20v1.bin"
        );
        let stored: Value = res.json().await.unwrap();
        assert_eq!(
            (
                stored["key"].as_str(),
                stored["size"].as_u64(),
                stored["sha256"].as_str()
            ),
            (Some("models/모델 v1.bin"), Some(data.len() as u64), Some(sha.as_str())),
            "{backend}"
        );
        let got = app
            .admin(Method::GET, "/api/v1/blobs/ai/models/%EB%AA%A8%EB%8D%B8%20v1.bin")
            .go()
            .await;
        assert_eq!(got.status(), 200);
        assert_eq!(got.headers()["x-checksum-sha256"], sha.as_str(), "{backend}");
        let body = got.bytes().await.unwrap();
        assert!(body.as_ref() == data.as_slice(), "{backend}: byte-exact");
        let head = app
            .admin(Method::HEAD, "/api/v1/blobs/ai/models/%EB%AA%A8%EB%8D%B8%20v1.bin")
            .go()
            .await;
        assert_eq!(head.headers()["x-checksum-sha256"], sha.as_str(), "{backend}");
        // Completed: the upload is gone, and the audit trail has the write.
        assert_problem(app.admin(Method::GET, &location).go().await, 404, "upload_not_found").await;
        let events: Value = app.get_json("/api/v1/events?type=blob.written").await;
        assert_eq!(events["items"][0]["subject"], "blob:ai/models/모델 v1.bin", "{backend}");
        assert_eq!(events["items"][0]["data"]["size"], data.len(), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_upload_resumes_from_the_parts_received() {
    let data = object();
    for (backend, app, _s3) in backends().await {
        let upload: Value = create(
            &app,
            "ai",
            json!({"key": "resume.bin", "size": data.len(), "part_size": 5 * MIB}),
        )
        .await
        .json()
        .await
        .unwrap();
        let first = send_part(&upload, 1, &data).await;
        // The connection drops; the client asks what arrived.
        let res = app.admin(Method::GET, &upload_path(&upload)).go().await;
        assert_eq!(res.status(), 200, "{backend}");
        let resumed: Value = res.json().await.unwrap();
        assert_eq!(
            resumed["received"],
            json!([{"number": 1, "etag": first, "size": 5 * MIB}]),
            "{backend}"
        );
        assert_eq!(resumed["parts"].as_array().unwrap().len(), 3);
        assert_eq!(resumed["id"], upload["id"]);
        // The rest through the fresh URLs; part 2 sent twice (a retry) replaces itself.
        send_part(&resumed, 2, &data).await;
        let second = send_part(&resumed, 2, &data).await;
        let third = send_part(&resumed, 3, &data).await;
        let again: Value = app.get_json(&upload_path(&upload)).await;
        assert_eq!(again["received"].as_array().unwrap().len(), 3, "{backend}: {again}");
        let res = complete(
            &app,
            &upload,
            json!([{"number": 1, "etag": first}, {"number": 2, "etag": second}, {"number": 3, "etag": third}]),
        )
        .await;
        assert_eq!(res.status(), 201, "{backend}");
        let got = app.admin(Method::GET, "/api/v1/blobs/ai/resume.bin").go().await;
        assert!(got.bytes().await.unwrap().as_ref() == data.as_slice(), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_that_do_not_add_up_are_refused_and_store_nothing() {
    let data = object();
    for (backend, app, _s3) in backends().await {
        let upload: Value = create(
            &app,
            "web",
            json!({"key": "partial.bin", "size": data.len(), "part_size": 5 * MIB}),
        )
        .await
        .json()
        .await
        .unwrap();
        let e1 = send_part(&upload, 1, &data).await;
        let e2 = send_part(&upload, 2, &data).await;
        // Two parts of three: not the declared size.
        let res = complete(
            &app,
            &upload,
            json!([{"number": 1, "etag": e1}, {"number": 2, "etag": e2}]),
        )
        .await;
        let problem = assert_problem(res, 422, "size_mismatch").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("declared"),
            "{backend}: {problem}"
        );
        // A part not received, a wrong ETag, parts out of order, none at all.
        let e3 = md5_etag(&data[10 * MIB..]);
        for (parts, why) in [
            (
                json!([{"number": 1, "etag": e1}, {"number": 2, "etag": e2}, {"number": 3, "etag": e3}]),
                "not received",
            ),
            (
                json!([{"number": 1, "etag": e2}, {"number": 2, "etag": e2}]),
                "wrong etag",
            ),
            (json!([{"number": 2, "etag": e2}, {"number": 1, "etag": e1}]), "order"),
            (json!([{"number": 1, "etag": e1}, {"number": 1, "etag": e1}]), "twice"),
            (json!([{"number": 4, "etag": e1}]), "beyond the parts"),
            (json!([]), "none"),
        ] {
            let res = complete(&app, &upload, parts).await;
            assert_eq!(res.status(), 422, "{backend}: {why}");
            assert_problem(res, 422, "invalid_parts").await;
        }
        // Not JSON of the right shape: the JSON extractor's 4xx.
        let res = app
            .admin(Method::POST, &format!("{}/complete", upload_path(&upload)))
            .json(&json!({"parts": [{"number": "one"}]}))
            .go()
            .await;
        assert!(res.status().is_client_error(), "{backend}");
        let missing = app.admin(Method::GET, "/api/v1/blobs/web/partial.bin").go().await;
        assert_eq!(missing.status(), 404, "{backend}: nothing was stored");
        // The upload stays: the last part, then a good completion.
        send_part(&upload, 3, &data).await;
        let res = complete(
            &app,
            &upload,
            json!([{"number": 1, "etag": e1}, {"number": 2, "etag": e2.trim_matches('"')}, {"number": 3, "etag": e3}]),
        )
        .await;
        assert_eq!(res.status(), 201, "{backend}: unquoted ETags do too");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_store_verifies_the_declared_sha256() {
    let app = TestApp::spawn().await;
    let data = object();
    let wrong = sha256_hex(b"something else");
    let upload: Value = create(
        &app,
        "web",
        json!({"key": "checked.bin", "size": data.len(), "sha256": wrong, "part_size": 5 * MIB}),
    )
    .await
    .json()
    .await
    .unwrap();
    let mut parts = Vec::new();
    for n in 1..=3 {
        parts.push(json!({"number": n, "etag": send_part(&upload, n, &data).await}));
    }
    assert_problem(complete(&app, &upload, json!(parts)).await, 422, "checksum_mismatch").await;
    let missing = app.admin(Method::GET, "/api/v1/blobs/web/checked.bin").go().await;
    assert_eq!(missing.status(), 404, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn aborting_drops_the_upload_and_its_urls() {
    let data = object();
    for (backend, app, _s3) in backends().await {
        let upload: Value = create(
            &app,
            "ai",
            json!({"key": "aborted.bin", "size": data.len(), "part_size": 5 * MIB}),
        )
        .await
        .json()
        .await
        .unwrap();
        send_part(&upload, 1, &data).await;
        let res = app.admin(Method::DELETE, &upload_path(&upload)).go().await;
        assert_eq!(res.status(), 204, "{backend}");
        assert_problem(
            app.admin(Method::GET, &upload_path(&upload)).go().await,
            404,
            "upload_not_found",
        )
        .await;
        assert_problem(
            app.admin(Method::DELETE, &upload_path(&upload)).go().await,
            404,
            "upload_not_found",
        )
        .await;
        assert_problem(
            complete(&app, &upload, json!([{"number": 1, "etag": "\"x\""}])).await,
            404,
            "upload_not_found",
        )
        .await;
        // The part URL still carries a good signature, but its upload is gone (S3 may
        // also refuse it by closing the connection before reading the body).
        let part = &upload["parts"][1];
        let sent = reqwest::Client::new()
            .put(part["url"].as_str().unwrap())
            .body(data[5 * MIB..10 * MIB].to_vec())
            .send()
            .await;
        match (backend, sent) {
            ("local", Ok(res)) => {
                assert_problem(res, 404, "upload_not_found").await;
            }
            (_, Ok(res)) => assert!(res.status().is_client_error(), "{backend}: {}", res.status()),
            ("s3", Err(_)) => {}
            (_, Err(e)) => panic!("{backend}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn creation_applies_the_namespace_rules_of_a_put() {
    let app = TestApp::with_vars(
        &[(
            "BLOB_NAMESPACES",
            r#"[{"name":"img","max_size":20971520,"allowed_types":["image/*"]},{"name":"web","max_size":1073741824}]"#,
        )],
        None,
    )
    .await;
    let res = create(&app, "img", json!({"key": "big.png", "size": 20 * MIB + 1})).await;
    assert_problem(res, 413, "payload_too_large").await;
    let res = create(&app, "img", json!({"key": "doc.pdf", "size": 10})).await;
    assert_problem(res, 415, "content_type_not_allowed").await;
    let res = create(
        &app,
        "img",
        json!({"key": "x.bin", "size": 10, "content_type": "text/html"}),
    )
    .await;
    assert_problem(res, 415, "content_type_not_allowed").await;
    let res = create(
        &app,
        "img",
        json!({"key": "photo", "size": 10, "content_type": "image/png"}),
    )
    .await;
    assert_eq!(res.status(), 201, "the declared type when the key says none");
    let made: Value = res.json().await.unwrap();
    assert_eq!(made["content_type"], "image/png");
    assert_eq!(made["part_size"], 8 * MIB, "the default part size");
    for (body, field) in [
        (json!({"key": "a.png", "size": 0}), "size"),
        (json!({"key": "a.png", "size": 10, "part_size": MIB}), "part_size"),
        (
            json!({"key": "a.png", "size": 10, "part_size": 6u64 * 1024 * 1024 * 1024}),
            "part_size",
        ),
        (json!({"key": "a.png", "size": 10, "sha256": "abc"}), "sha256"),
        (
            json!({"key": "a.png", "size": 10, "content_type": "nonsense"}),
            "content_type",
        ),
    ] {
        let problem = assert_problem(create(&app, "img", body.clone()).await, 422, "invalid_field").await;
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    // 1 GiB in 5 MiB parts is 205 parts; a 1 GiB upload in the default 8 MiB parts, 128.
    let made: Value = create(&app, "web", json!({"key": "g.bin", "size": 1u64 << 30}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(made["parts"].as_array().unwrap().len(), 128);
    // Key rules, unknown fields, no namespace, no key.
    assert_problem(
        create(&app, "img", json!({"key": "../a.png", "size": 10})).await,
        400,
        "invalid_key",
    )
    .await;
    let res = create(&app, "img", json!({"key": "a.png", "size": 10, "colour": "red"})).await;
    assert!(res.status().is_client_error());
    assert_problem(
        create(&app, "nope", json!({"key": "a.png", "size": 10})).await,
        404,
        "namespace_not_found",
    )
    .await;
    let res = app
        .client
        .post(app.url("/api/v1/blobs/img/uploads"))
        .json(&json!({"key": "a.png", "size": 10}))
        .go()
        .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_need_the_namespaces_write_scope_and_stay_in_their_namespace() {
    let app = TestApp::spawn().await;
    let (_, web_writer) = app.create_key(&["blobs:write:web"]).await;
    let (_, ai_reader) = app.create_key(&["blobs:read:ai"]).await;
    let as_key = |key: &str, method: Method, path: &str| app.as_key(key, method, path);
    let res = as_key(&web_writer, Method::POST, "/api/v1/blobs/ai/uploads")
        .json(&json!({"key": "m.bin", "size": 10}))
        .go()
        .await;
    let problem = assert_problem(res, 403, "insufficient_scope").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("blobs:write:ai"),
        "{problem}"
    );
    let res = as_key(&ai_reader, Method::POST, "/api/v1/blobs/ai/uploads")
        .json(&json!({"key": "m.bin", "size": 10}))
        .go()
        .await;
    assert_eq!(res.status(), 403);
    let upload: Value = create(&app, "ai", json!({"key": "m.bin", "size": 10}))
        .await
        .json()
        .await
        .unwrap();
    let id = upload["id"].as_str().unwrap();
    for (method, suffix) in [(Method::GET, ""), (Method::DELETE, ""), (Method::POST, "/complete")] {
        let res = as_key(
            &web_writer,
            method.clone(),
            &format!("/api/v1/blobs/ai/uploads/{id}{suffix}"),
        )
        .json(&json!({"parts": []}))
        .go()
        .await;
        assert_eq!(res.status(), 403, "{method} {suffix}");
        // The id in a namespace the key may write: not that namespace's upload.
        let res = as_key(
            &web_writer,
            method.clone(),
            &format!("/api/v1/blobs/web/uploads/{id}{suffix}"),
        )
        .json(&json!({"parts": [{"number": 1, "etag": "x"}]}))
        .go()
        .await;
        assert_problem(res, 404, "upload_not_found").await;
    }
    // Unguessable ids of the right shape that were never made.
    let res = app
        .admin(Method::GET, &format!("/api/v1/blobs/ai/uploads/up_{}", "0".repeat(32)))
        .go()
        .await;
    assert_problem(res, 404, "upload_not_found").await;
    // Objects under `uploads/` are still objects: read with the read scope only.
    let res = app
        .admin(Method::PUT, "/api/v1/blobs/ai/uploads/notes.txt")
        .body("still an object")
        .go()
        .await;
    assert_eq!(res.status(), 201);
    let res = as_key(&ai_reader, Method::GET, "/api/v1/blobs/ai/uploads/notes.txt")
        .go()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "still an object");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_part_urls_are_bound_to_their_part() {
    let app = TestApp::spawn().await;
    let data = object();
    let upload: Value = create(
        &app,
        "web",
        json!({"key": "bound.bin", "size": data.len(), "part_size": 5 * MIB}),
    )
    .await
    .json()
    .await
    .unwrap();
    let url = upload["parts"][0]["url"].as_str().unwrap().to_owned();
    let plain = reqwest::Client::new();
    let first = &data[..5 * MIB];
    // Another part's number, another length, a later expiry, a forged signature, another
    // namespace, no signature: all refused before any byte is stored.
    let tampered = [
        url.replace("/parts/1?", "/parts/2?"),
        url.replace("X-EB-Content-Length=5242880", "X-EB-Content-Length=5242881"),
        {
            let expires = upload["expires_at"].as_str().unwrap();
            let at = chrono::DateTime::parse_from_rfc3339(expires).unwrap().timestamp();
            url.replace(&format!("X-EB-Expires={at}"), &format!("X-EB-Expires={}", at + 3600))
        },
        {
            let sig = url.split("X-EB-Signature=").nth(1).unwrap();
            url.replace(sig, &"0".repeat(64))
        },
        url.replace("/blobs/web/", "/blobs/ai/"),
        url.split('?').next().unwrap().to_owned(),
    ];
    for bad in &tampered {
        assert_ne!(bad, &url);
        let res = plain.put(bad).body(first.to_vec()).go().await;
        assert_problem(res, 403, "signature_invalid").await;
    }
    // A part larger (or smaller) than its size.
    let mut larger = first.to_vec();
    larger.push(0);
    let res = plain.put(&url).body(larger).go().await;
    assert_problem(res, 403, "signature_invalid").await;
    let res = plain.put(&url).body(first[1..].to_vec()).go().await;
    assert_problem(res, 403, "signature_invalid").await;
    let now: Value = app.get_json(&upload_path(&upload)).await;
    assert_eq!(now["received"], json!([]), "nothing stored");
    // Expired: a URL signed a second in the past.
    let signer = blob_store::UrlSigner::new(shared_db::KeyRing::new(crate::helpers::SECRET.as_bytes(), &[]));
    let id = upload["id"].as_str().unwrap();
    let past = chrono::Utc::now().timestamp() - 1;
    let sig = signer.sign_part("web", id, 1, 5 * MIB as u64, past);
    let expired = format!(
        "{}/api/v1/blobs/web/uploads/{id}/parts/1?X-EB-Method=PUT&X-EB-Expires={past}&X-EB-Content-Length={}&X-EB-Signature={sig}",
        app.address,
        5 * MIB
    );
    let problem = assert_problem(
        plain.put(&expired).body(first.to_vec()).go().await,
        403,
        "signature_invalid",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("expired"), "{problem}");
    // The good URL works, with no API key.
    let res = plain.put(&url).body(first.to_vec()).go().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"].to_str().unwrap(), md5_etag(first));
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_part_urls_refuse_a_part_of_another_size() {
    let s3 = blob_store::testing::S3TestServer::start().await;
    let app = s3_app(&s3, &[]).await;
    let data = object();
    let upload: Value = create(
        &app,
        "ai",
        json!({"key": "sized.bin", "size": data.len(), "part_size": 5 * MIB}),
    )
    .await
    .json()
    .await
    .unwrap();
    let mut larger = data[..5 * MIB].to_vec();
    larger.push(0);
    // S3 refuses it (the length is a signed header): a 403, or the connection closed
    // before the body is read.
    let sent = reqwest::Client::new()
        .put(upload["parts"][0]["url"].as_str().unwrap())
        .body(larger)
        .send()
        .await;
    if let Ok(res) = sent {
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    let now: Value = app.get_json(&upload_path(&upload)).await;
    assert_eq!(now["received"], json!([]), "nothing stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_aborts_uploads_left_a_day() {
    let data = object();
    for (backend, app, _s3) in backends().await {
        let old: Value = create(
            &app,
            "web",
            json!({"key": "old.bin", "size": data.len(), "part_size": 5 * MIB}),
        )
        .await
        .json()
        .await
        .unwrap();
        send_part(&old, 1, &data).await;
        let swept = app.state.blobs.sweep_uploads(chrono::Utc::now()).await.unwrap();
        assert_eq!(swept, 0, "{backend}: not expired yet");
        let later = chrono::Utc::now() + chrono::Duration::hours(24) + chrono::Duration::seconds(5);
        let fresh: Value = create(&app, "web", json!({"key": "fresh.bin", "size": 10}))
            .await
            .json()
            .await
            .unwrap();
        let swept = app.state.blobs.sweep_uploads(later).await.unwrap();
        assert_eq!(swept, 2, "{backend}: both are a day old by then");
        assert_problem(
            app.admin(Method::GET, &upload_path(&old)).go().await,
            404,
            "upload_not_found",
        )
        .await;
        assert_problem(
            app.admin(Method::GET, &upload_path(&fresh)).go().await,
            404,
            "upload_not_found",
        )
        .await;
        let again = app.state.blobs.sweep_uploads(later).await.unwrap();
        assert_eq!(again, 0, "{backend}");
    }
}

/// The upload folders of a local store rooted at `blob_dir`.
fn upload_folders(blob_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(blob_dir.join(".uploads"))
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_the_sweep_cannot_abort_does_not_stop_it() {
    let blobs = tempfile::tempdir().unwrap();
    let app = TestApp::with_vars(&[("BLOB_DIR", &blobs.path().to_string_lossy())], None).await;
    // The oldest upload, whose parts folder is replaced by a plain file: its abort fails.
    let stuck: Value = create(&app, "web", json!({"key": "stuck.bin", "size": 10}))
        .await
        .json()
        .await
        .unwrap();
    let folders = upload_folders(blobs.path());
    assert_eq!(folders.len(), 1);
    std::fs::remove_dir_all(&folders[0]).unwrap();
    std::fs::write(&folders[0], b"not a folder").unwrap();
    let mut others = Vec::new();
    for i in 0..3 {
        let up: Value = create(&app, "web", json!({"key": format!("other-{i}.bin"), "size": 10}))
            .await
            .json()
            .await
            .unwrap();
        others.push(up);
    }
    assert_eq!(upload_folders(blobs.path()).len(), 4);
    let later = chrono::Utc::now() + chrono::Duration::hours(24) + chrono::Duration::seconds(5);
    let swept = app.state.blobs.sweep_uploads(later).await.unwrap();
    assert_eq!(swept, 3, "the others are aborted despite the stuck one");
    for up in &others {
        assert_problem(
            app.admin(Method::GET, &upload_path(up)).go().await,
            404,
            "upload_not_found",
        )
        .await;
    }
    assert_eq!(upload_folders(blobs.path()), folders, "only the stuck one is left");
    // The stuck one is tried again (and skipped again) by the next sweep.
    assert_eq!(app.state.blobs.sweep_uploads(later).await.unwrap(), 0);
    // Once it can be aborted, it is.
    std::fs::remove_file(&folders[0]).unwrap();
    assert_eq!(app.state.blobs.sweep_uploads(later).await.unwrap(), 1);
    let _ = stuck;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_completions_make_one_object() {
    let data = object();
    for (backend, app, _s3) in backends().await {
        let upload: Value = create(
            &app,
            "web",
            json!({"key": "race.bin", "size": data.len(), "part_size": 5 * MIB}),
        )
        .await
        .json()
        .await
        .unwrap();
        let mut parts = Vec::new();
        for n in 1..=3 {
            parts.push(json!({"number": n, "etag": send_part(&upload, n, &data).await}));
        }
        let parts = Value::Array(parts);
        let answers = futures_util::future::join_all((0..4).map(|_| complete(&app, &upload, parts.clone()))).await;
        let mut statuses: Vec<u16> = Vec::new();
        for res in answers {
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            if status != 201 {
                let code = body["code"].as_str().unwrap_or_default().to_owned();
                assert!(
                    (status == 409 && code == "upload_completing") || (status == 404 && code == "upload_not_found"),
                    "{backend}: {status} {body}"
                );
            }
            statuses.push(status);
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{backend}: exactly one completion wins: {statuses:?}"
        );
        let events: Value = app.get_json("/api/v1/events?type=blob.written").await;
        let written = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["subject"] == "blob:web/race.bin")
            .count();
        assert_eq!(written, 1, "{backend}: one blob.written");
        let res = app.admin(Method::GET, "/api/v1/blobs/web/race.bin").go().await;
        assert_eq!(res.status(), 200, "{backend}");
        assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice(), "{backend}");
        // Once completed, the upload takes neither parts nor an abort.
        assert_problem(
            app.admin(Method::DELETE, &upload_path(&upload)).go().await,
            404,
            "upload_not_found",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_being_completed_takes_no_part_or_abort() {
    let app = TestApp::spawn().await;
    let upload: Value = create(&app, "web", json!({"key": "busy.bin", "size": 10}))
        .await
        .json()
        .await
        .unwrap();
    // As a completion in progress leaves it.
    let mut conn = app.state.pool.get().await.unwrap();
    let id = upload["id"].as_str().unwrap();
    assert!(blob_store::testing::claim_upload(&mut conn, id, "completing").await);
    drop(conn);
    assert_problem(put_part(&upload, 1, b"0123456789").await, 409, "upload_completing").await;
    assert_problem(
        app.admin(Method::DELETE, &upload_path(&upload)).go().await,
        409,
        "upload_completing",
    )
    .await;
    assert_problem(
        complete(&app, &upload, json!([{"number": 1, "etag": "\"x\""}])).await,
        409,
        "upload_completing",
    )
    .await;
    // A refused completion leaves the upload open.
    let mut conn = app.state.pool.get().await.unwrap();
    blob_store::testing::reopen_upload(&mut conn, id).await;
    drop(conn);
    let res = complete(
        &app,
        &upload,
        json!([{"number": 1, "etag": "\"0123456789abcdef0123456789abcdef\""}]),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = put_part(&upload, 1, b"0123456789").await;
    assert_eq!(res.status(), 200, "open again after the refusal");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_keys_of_an_uploads_exact_shape_are_reserved() {
    let app = TestApp::spawn().await;
    // Keys that merely look like upload ids are objects, read and written as any.
    for key in [
        "uploads/up_0a",
        "uploads/up_0123456789abcdef0123456789abcdef0",
        "uploads/up_0123456789ABCDEF0123456789ABCDEF",
        "a/uploads/up_0123456789abcdef0123456789abcdef",
    ] {
        let path = format!("/api/v1/blobs/web/{key}");
        let res = crate::blobs::put(&app, &path, b"hello".to_vec(), &[("content-type", "text/plain")]).await;
        assert_eq!(res.status(), 201, "{key}: {}", res.text().await.unwrap());
        let res = app.admin(Method::GET, &path).go().await;
        assert_eq!(res.status(), 200, "{key}");
        assert_eq!(res.text().await.unwrap(), "hello", "{key}");
    }
    // The exact shape (and keys below it) would be hidden by the upload routes: refused
    // on every write, naming why.
    let id = "up_0123456789abcdef0123456789abcdef";
    for key in [format!("uploads/{id}"), format!("uploads/{id}/notes.txt")] {
        let res = crate::blobs::put(
            &app,
            &format!("/api/v1/blobs/web/{key}"),
            b"hello".to_vec(),
            &[("content-type", "text/plain")],
        )
        .await;
        assert_eq!(res.status(), 400, "{key}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "invalid_key", "{key}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("reserved_upload_path"),
            "{body}"
        );
        let res = create(&app, "web", json!({"key": key, "size": 10})).await;
        assert_problem(res, 400, "invalid_key").await;
        let res = app
            .admin(Method::POST, "/api/v1/blobs/web/presign")
            .json(&json!({"key": key, "method": "PUT", "content_type": "text/plain", "content_length": 5}))
            .go()
            .await;
        assert_problem(res, 400, "invalid_key").await;
        let form = reqwest::multipart::Form::new().text("key", key.clone()).part(
            "file",
            reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("n.txt"),
        );
        let res = app.admin(Method::POST, "/api/v1/blobs/web").multipart(form).go().await;
        assert_problem(res, 400, "invalid_key").await;
    }
    let res = app
        .admin(Method::GET, &format!("/api/v1/blobs/web/uploads/{id}"))
        .go()
        .await;
    assert_problem(res, 404, "upload_not_found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_puts_of_one_part_leave_one_of_them() {
    let app = TestApp::spawn().await;
    let (a, b) = (b"aaaaaaaaaa".to_vec(), b"bbbbbbbbbb".to_vec());
    for round in 0..10 {
        let upload: Value = create(
            &app,
            "web",
            json!({"key": format!("same-part-{round}.bin"), "size": 10}),
        )
        .await
        .json()
        .await
        .unwrap();
        let (ra, rb) = tokio::join!(put_part(&upload, 1, &a), put_part(&upload, 1, &b));
        assert_eq!(
            (ra.status().as_u16(), rb.status().as_u16()),
            (200, 200),
            "round {round}"
        );
        let now: Value = app.get_json(&upload_path(&upload)).await;
        let received = now["received"].as_array().unwrap();
        assert_eq!(received.len(), 1, "round {round}: part 1 survives: {now}");
        assert_eq!(received[0]["number"], 1);
        let etag = received[0]["etag"].as_str().unwrap().to_owned();
        let body = if etag == md5_etag(&a) {
            &a
        } else {
            assert_eq!(etag, md5_etag(&b), "round {round}: one of the two");
            &b
        };
        let res = complete(&app, &upload, json!([{"number": 1, "etag": etag}])).await;
        assert_eq!(res.status(), 201, "round {round}: {}", res.text().await.unwrap());
        let res = app
            .admin(Method::GET, &format!("/api/v1/blobs/web/same-part-{round}.bin"))
            .go()
            .await;
        assert_eq!(res.bytes().await.unwrap().as_ref(), body.as_slice(), "round {round}");
    }
}
