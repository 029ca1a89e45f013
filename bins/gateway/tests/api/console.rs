//! The web console: its files and their headers, what it refuses, the overview route it
//! reads, and its browser tests (bins/gateway/console/tests, Playwright driving Debian's
//! chromium) run against this gateway.

use std::path::Path;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Go, TestApp, assert_problem, post_json};

const CONSOLE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/console");

fn assert_secured(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self';",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(part), "{what}: CSP {csp} lacks {part}");
    }
    let scripts = csp.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
    assert!(!scripts.contains("unsafe"), "{what}: {scripts}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
}

/// A request line sent as written (no client normalises its path).
async fn raw_get(app: &TestApp, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_is_served_with_its_types_validators_and_security_headers() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_secured(&res, "/console/");
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let body = res.text().await.unwrap();
    assert!(body.contains(r#"<label for="api-key">API key</label>"#));
    assert!(body.contains(r#"<html lang="en">"#) && body.contains(r#"<meta charset="utf-8">"#));

    // Revalidation answers 304 with no body.
    let again = app
        .client
        .get(app.url("/console/"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_secured(&again, "304");
    assert_eq!(again.headers()["etag"], etag.as_str());

    for (path, ty) in [
        ("/console/index.html", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/pages/licenses.js", "text/javascript; charset=utf-8"),
        ("/console/style.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], ty, "{path}");
        assert_secured(&res, path);
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(head.headers()["content-type"], ty, "HEAD {path}");
    }

    // Every file of the console (its tests aside) is served: none was left out of the table.
    let mut served = 0;
    for dir in ["", "pages"] {
        for entry in std::fs::read_dir(Path::new(CONSOLE_DIR).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            let name = path.strip_prefix(CONSOLE_DIR).unwrap().to_string_lossy().into_owned();
            let res = app
                .client
                .get(app.url(&format!("/console/{name}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{name} is not served");
            assert_eq!(res.bytes().await.unwrap(), std::fs::read(&path).unwrap(), "{name}");
            served += 1;
        }
    }
    assert!(served >= 15, "{served}");

    // Without the slash: a redirect, so relative module paths resolve.
    let res = app.client.get(app.url("/console")).send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/console/");
    assert_secured(&res, "/console");

    // Other methods: 405 naming GET.
    let res = app.admin(Method::POST, "/console/").go().await;
    assert_eq!(res.status(), 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_serves_only_its_own_files() {
    let app = TestApp::spawn().await;
    for path in [
        "/console/nope.js",
        "/console/pages/",
        "/console/tests/test_console.py",
        "/console/INDEX.HTML",
        "/console/index.html/",
        "/console/pages/../app.js",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_secured(&res, path);
        // reqwest resolves `..` itself; what arrives must still be a known file or a 404.
        if path.contains("..") {
            assert_eq!(res.status(), 200, "{path}");
            continue;
        }
        assert_problem(res, 404, "console_file_not_found").await;
    }
    // Traversal as written on the wire, encoded every way.
    for target in [
        "/console/../Cargo.toml",
        "/console/..%2f..%2fCargo.toml",
        "/console/%2e%2e/%2e%2e/Cargo.toml",
        "/console/pages/..%2f..%2fsrc%2fconsole.rs",
        "/console/%2e%2e%5c%2e%2e%5cCargo.toml",
        "/console/app.js%00.html",
        "/console//etc/passwd",
    ] {
        let (status, out) = raw_get(&app, target).await;
        assert!(status == 404 || status == 400, "{target}: {status}\n{out}");
        assert!(
            !out.contains("[package]") && !out.contains("root:"),
            "{target} leaked:\n{out}"
        );
    }
}

#[test]
fn the_console_has_no_inline_script_or_handler_and_writes_no_html() {
    let mut files = vec![];
    for dir in ["", "pages"] {
        for entry in std::fs::read_dir(Path::new(CONSOLE_DIR).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "js" || e == "html") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 12, "{files:?}");
    let handler = regex::Regex::new(r"(?i)<[^>]+\son[a-z]+\s*=").unwrap();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.display();
        assert!(!handler.is_match(&text), "{name}: an inline event handler");
        for tag in text.match_indices("<script") {
            let open = &text[tag.0..text[tag.0..].find('>').map_or(text.len(), |e| tag.0 + e)];
            assert!(open.contains(" src="), "{name}: an inline script: {open}");
        }
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!text.contains(banned), "{name} uses {banned}");
        }
        assert!(
            !text.contains("localStorage"),
            "{name}: the key belongs in sessionStorage only"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_counts_each_part_under_its_scope() {
    // SQLite, and MariaDB when one answers (required under CI=true).
    for db in shared_db::testing::TestDb::each().await {
        let url = crate::helpers::url_of(&db.url);
        let vars = [
            ("MAIL_TRANSPORT", "dev"),
            ("SLACK_TRANSPORT", "dev"),
            ("DATABASE_URL", url.as_str()),
        ];
        overview_counts_on(TestApp::with_vars(&vars, Some(db)).await).await;
    }
}

async fn overview_counts_on(app: TestApp) {
    let issue = |name: &str| json!({"product": "client", "name": name, "owner_email": "o@example.com"});
    for name in ["a", "b", "c"] {
        assert_eq!(post_json(&app, "/api/v1/licenses", &issue(name)).await.status(), 201);
    }
    let id = crate::helpers::id_of(post_json(&app, "/api/v1/licenses", &issue("d")).await).await;
    let res = app
        .admin(Method::POST, &format!("/api/v1/licenses/{id}/suspend"))
        .go()
        .await;
    assert_eq!(res.status(), 200);
    let id = crate::helpers::id_of(post_json(&app, "/api/v1/licenses", &issue("e")).await).await;
    let res = app
        .admin(Method::POST, &format!("/api/v1/licenses/{id}/revoke"))
        .go()
        .await;
    assert_eq!(res.status(), 200);
    // An active licence past its expiry counts as expired (the API refuses a past
    // expiry, so the row is aged here).
    let id = crate::helpers::id_of(post_json(&app, "/api/v1/licenses", &issue("f")).await).await;
    {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = app.state.pool.get().await.unwrap();
        let sql = format!("UPDATE eb_licenses SET expires_at = '2020-01-01 00:00:00' WHERE id = '{id}'");
        shared_db::with_conn!(&mut *conn, |c| c.batch_execute(&sql).await).unwrap();
    }
    let res = post_json(
        &app,
        "/api/v1/emails",
        &json!({"to": "x@example.com", "subject": "s", "text": "t"}),
    )
    .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let res = post_json(
        &app,
        "/api/v1/slack/messages",
        &json!({"level": "info", "title": "t", "channel": "#ops"}),
    )
    .await;
    assert_eq!(res.status(), 202);

    let all = app.admin(Method::GET, "/api/v1/overview").go().await;
    assert_eq!(all.status(), 200);
    assert_eq!(all.headers()["cache-control"], "no-store");
    let all: serde_json::Value = all.json().await.unwrap();
    assert_eq!(
        all["licenses"]["by_status"],
        json!({"active": 3, "suspended": 1, "revoked": 1, "expired": 1})
    );
    let hourly = all["emails"]["hourly"].as_array().unwrap();
    assert_eq!(hourly.len(), 24);
    assert_eq!(hourly.iter().map(|h| h["count"].as_i64().unwrap()).sum::<i64>(), 1);
    assert_eq!(hourly[23]["count"], 1, "{hourly:?}");
    let email_total: i64 = all["emails"]["by_status"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(email_total, 1);
    let slack_total: i64 = all["slack"]["by_status"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(slack_total, 1);
    let names: Vec<&str> = all["storage"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["client", "web", "ai"]);
    assert!(all["jobs"].is_array());
    assert_eq!(all["needs"], json!({}));

    // A narrow key sees its part; the others name their scope.
    let (_, narrow) = app.create_key(&["licenses:read"]).await;
    let some = app.as_key(&narrow, Method::GET, "/api/v1/overview").go_json().await;
    assert_eq!(some["licenses"]["by_status"]["suspended"], 1);
    for part in ["emails", "slack", "storage", "jobs"] {
        assert!(some.get(part).is_none(), "{part}: {some}");
    }
    assert_eq!(
        some["needs"],
        json!({"emails": "emails:read", "slack": "slack:read", "storage": "blobs:read", "jobs": "emails:read"})
    );

    // A namespace-qualified key sees only its namespace; the Slack scope shows Slack's jobs only.
    let (_, web) = app.create_key(&["blobs:read:web", "slack:read"]).await;
    let some = app.as_key(&web, Method::GET, "/api/v1/overview").go_json().await;
    assert_eq!(
        some["storage"]["namespaces"],
        json!([{"name": "web", "max_size": 1_073_741_824u64}])
    );
    for job in some["jobs"].as_array().unwrap() {
        assert!(job["queue"].as_str().unwrap().starts_with("slack."), "{job}");
    }

    // A key with no section's scope is refused; no key is 401.
    let (_, data) = app.create_key(&["data:read"]).await;
    let res = app.as_key(&data, Method::GET, "/api/v1/overview").go().await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app.client.get(app.url("/api/v1/overview")).send().await.unwrap();
    assert_problem(res, 401, "missing_credentials").await;
}

/// Chromium and Playwright for Python; required under CI=true, else the test says it is
/// skipped.
fn browser_available() -> bool {
    if !shared_db::testing::python_with("playwright.sync_api, pytest, httpx", "the console's browser tests") {
        return false;
    }
    let chromium = std::env::var("EB_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        assert!(
            !shared_db::testing::in_ci(),
            "Debian's chromium ({chromium}) is required under CI=true"
        );
        eprintln!("SKIPPED: the console's browser tests: no chromium at {chromium}");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_passes_its_browser_tests() {
    if !browser_available() {
        return;
    }
    let app = TestApp::with_vars(&[("MAIL_TRANSPORT", "dev"), ("SLACK_TRANSPORT", "dev")], None).await;
    let tests = Path::new(CONSOLE_DIR).join("tests");
    let out = tokio::process::Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"])
        .arg(&tests)
        .current_dir(&tests)
        .env("EB_URL", &app.address)
        .env("EB_KEY", &app.admin_key)
        .output()
        .await
        .expect("running pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the console's browser tests failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed"), "pytest ran nothing:\n{stdout}");
    assert!(!stdout.contains("skipped"), "a browser test was skipped:\n{stdout}");
    let passed = regex::Regex::new(r"(\d+) passed")
        .unwrap()
        .captures(&stdout)
        .and_then(|c| c[1].parse::<u32>().ok());
    assert!(passed.is_some_and(|n| n >= 16), "too few browser tests ran:\n{stdout}");
}
