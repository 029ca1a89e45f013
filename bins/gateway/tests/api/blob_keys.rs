//! Storage keys over HTTP: the key rules, keys that are not UTF-8, and namespaces that
//! a key without their scope cannot tell apart from missing ones.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::blob_signed::problem_shape;
use crate::blobs::put;
use crate::helpers::{Go, TestApp, assert_problem, get, send_json};
use reqwest::Method;

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
    let res = get(&app, "/api/v1/blobs/web/%EF%BF%BD%EF%BF%BD").await;
    assert_problem(res, 404, "object_not_found").await;

    // Query parameters: a listing prefix, and the parameters of a signed URL.
    let res = get(&app, "/api/v1/blobs/web?prefix=%ff").await;
    let problem = assert_problem(res, 400, "invalid_query").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("rule: not_utf8"),
        "{problem}"
    );
    put(&app, "/api/v1/blobs/web/a.txt", b"1".to_vec(), &[]).await;
    let p: Value = send_json(
        &app,
        Method::POST,
        "/api/v1/blobs/web/presign",
        &json!({"key": "a.txt", "method": "GET"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let url = p["url"].as_str().unwrap();
    let plain = reqwest::Client::new();
    for altered in [
        url.replace("/a.txt?", "/%ff%fe?"),
        format!("{url}&X-EB-Content-Type=%ff"),
    ] {
        let res = plain.get(&altered).go().await;
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
    let res = app.admin(Method::POST, "/api/v1/blobs/web").multipart(form).go().await;
    let problem = assert_problem(res, 400, "invalid_key").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("rule: not_utf8"),
        "{problem}"
    );
    let mut raw_form = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".to_vec();
    raw_form.extend_from_slice(&[0xff, 0xfe]);
    raw_form.extend_from_slice(b"\"\r\n\r\nx\r\n--b--\r\n");
    let res = app
        .admin(Method::POST, "/api/v1/blobs/web")
        .header("content-type", "multipart/form-data; boundary=b")
        .body(raw_form)
        .go()
        .await;
    assert_eq!(res.status(), 400);

    // Presign requests: JSON is UTF-8, and lone surrogates are no characters.
    for body in [
        b"{\"key\":\"\xff\xfe\",\"method\":\"GET\"}".to_vec(),
        br#"{"key":"\udcff\udcfe","method":"GET"}"#.to_vec(),
    ] {
        let res = app
            .admin(Method::POST, "/api/v1/blobs/web/presign")
            .header("content-type", "application/json")
            .body(body)
            .go()
            .await;
        assert_eq!(res.status(), 400);
    }

    let list: Value = app.get_json("/api/v1/blobs/web").await;
    assert_eq!(list["objects"].as_array().unwrap().len(), 1, "only a.txt: {list}");
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
                let (status, body) = problem_shape(req.go().await).await;
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
