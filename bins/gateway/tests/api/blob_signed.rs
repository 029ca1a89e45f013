//! Signed storage URLs over HTTP: minted, bound to what they allow, refused when
//! tampered with, and those signed before the upgrade.

use serde_json::{Value, json};

use crate::blobs::{put, s3_app};
use crate::helpers::{Go, TestApp, assert_problem, get};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls_work_without_a_key_and_refuse_tampering() {
    let app = TestApp::spawn().await;
    let presign = |body: Value| app.admin(Method::POST, "/api/v1/blobs/ai/presign").json(&body).go();
    let p: Value =
        presign(json!({"key": "uploads/데이터.csv", "method": "PUT", "expires_in": 120, "content_type": "text/csv", "content_length": 8}))
            .await
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
        .go()
        .await;
    assert_eq!(res.status(), 201);
    let res = plain
        .put(&put_url)
        .header("content-type", "text/html")
        .body("<x>")
        .go()
        .await;
    assert_problem(res, 403, "signature_invalid").await;

    let p: Value = presign(json!({"key": "uploads/데이터.csv", "method": "get"}))
        .await
        .json()
        .await
        .unwrap();
    let get_url = p["url"].as_str().unwrap().to_owned();
    let res = plain.get(&get_url).go().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "a,b\n1,2\n");
    let res = plain.put(&get_url).body("x").go().await;
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
        let res = plain.get(&altered).go().await;
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
        .json()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = plain.get(p["url"].as_str().unwrap()).go().await;
    let problem = assert_problem(res, 403, "signature_invalid").await;
    assert!(problem["detail"].as_str().unwrap().contains("expired"));

    let res = presign(json!({"key": "x", "method": "DELETE"})).await;
    assert_problem(res, 422, "invalid_field").await;
    let res = presign(json!({"key": "x", "method": "GET", "expires_in": 999999999})).await;
    assert_problem(res, 422, "invalid_field").await;
}

/// The parts of a problem that must not differ between two answers (its request id and
/// instance always do).
pub(crate) async fn problem_shape(res: reqwest::Response) -> (u16, Value) {
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
                let res = req.body("x").go().await;
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
    let presign = |body: Value| app.admin(Method::POST, "/api/v1/blobs/img/presign").json(&body).go();
    let res = presign(json!({"key": key, "method": "PUT", "content_type": "image/png"})).await;
    let problem = assert_problem(res, 422, "invalid_field").await;
    assert_eq!(problem["field"], "content_length", "{problem}");
    let res =
        presign(json!({"key": key, "method": "PUT", "content_type": "image/png", "content_length": 5_000_000_000u64}))
            .await;
    assert_problem(res, 413, "payload_too_large").await;
    let res = presign(json!({"key": key, "method": "PUT", "content_type": "text/html", "content_length": 4})).await;
    assert_problem(res, 415, "content_type_not_allowed").await;
    let res =
        presign(json!({"key": key, "method": "PUT", "content_type": "application/octet-stream", "content_length": 4}))
            .await;
    assert_problem(res, 415, "content_type_not_allowed").await;
    // Without a type, the key's (image/png here) is declared.
    let res = presign(json!({"key": key, "method": "PUT", "content_length": 4})).await;
    assert_eq!(res.status(), 200);
    let declared = res.json::<Value>().await.unwrap()["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    assert_eq!(declared, Some(json!("image/png")));
    let res = presign(json!({"key": key, "method": "PUT", "content_type": "image/png", "content_length": 4})).await;
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
        .go()
        .await
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
        .go()
        .await;
    assert_problem(res, 403, "signature_invalid").await;
    let res = put_signed(&url, "image/png", b"\x89PNG").await;
    assert_eq!(res.status(), 201);
    let res = get(&app, "/api/v1/blobs/img/pic.png").await;
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
    let res = plain.get(&get_url).go().await;
    assert_eq!(res.status(), 200, "a GET URL signed before the upgrade downloads");
    assert_eq!(res.text().await.unwrap(), "a,b\n1,2\n");
    let res = plain.head(&get_url).go().await;
    assert_eq!(res.status(), 200, "and answers HEAD");

    for (content_type, body) in [("text/csv", "x,y\n"), ("", "x")] {
        let put_url = pre_v2_url(&app, "PUT", "ai", "uploads/데이터 1.csv", expires, content_type);
        let mut req = plain.put(&put_url).body(body);
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        let problem = assert_problem(req.go().await, 403, "signature_invalid").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("sign it again"),
            "an upload URL signed before the upgrade is refused, saying why: {problem}"
        );
    }
    let res = get(&app, "/api/v1/blobs/ai/uploads/%EB%8D%B0%EC%9D%B4%ED%84%B0%201.csv").await;
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
        let res = plain.get(&altered).go().await;
        assert_problem(res, 403, "signature_invalid").await;
    }
    // A GET URL used to upload is refused whichever format signed it.
    let res = plain.put(&get_url).body("x").go().await;
    assert_problem(res, 403, "signature_invalid").await;
}
