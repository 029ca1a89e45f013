use crate::helpers::{Go, TestApp, assert_problem, send_json};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/api/v1/nothing-here")).go().await;
    assert_problem(res, 404, "route_not_found").await;

    let res = app.client.put(app.url("/api/v1/api-keys")).go().await;
    assert_eq!(res.headers()["allow"], "GET, POST");
    assert_problem(res, 405, "method_not_allowed").await;

    let res = app.client.post(app.url("/api/v1/api-keys/some-id")).go().await;
    assert_eq!(res.headers()["allow"], "DELETE, GET");
    assert_problem(res, 405, "method_not_allowed").await;

    let res = app.client.delete(app.url("/healthz")).go().await;
    assert_problem(res, 405, "method_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_clear_4xx_problems() {
    let app = TestApp::spawn().await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/api-keys"))
            .bearer_auth(&app.admin_key)
            .header("content-type", content_type)
            .body(body)
    };
    let res = post(b"{\"name\": ".to_vec(), "application/json").go().await;
    assert_problem(res, 400, "malformed_json").await;

    let res = post(b"not json at all".to_vec(), "application/json").go().await;
    assert_problem(res, 400, "malformed_json").await;

    let res = post(br#"{"name":"x","scopes":["*"]}"#.to_vec(), "text/plain")
        .go()
        .await;
    assert_problem(res, 415, "unsupported_media_type").await;

    let res = post(br#"{"name":7,"scopes":["*"]}"#.to_vec(), "application/json")
        .go()
        .await;
    let body = assert_problem(res, 422, "invalid_body").await;
    assert_eq!(body["detail"], "name: expected text, not the number 7");
    assert_eq!(body["field"], "name");

    let res = post(
        br#"{"name":"x","scopes":["*"],"admin":true}"#.to_vec(),
        "application/json",
    )
    .go()
    .await;
    let body = assert_problem(res, 422, "invalid_body").await;
    assert_eq!(
        body["detail"],
        "admin: not a known field; known fields: name, scopes, expires_at"
    );

    let mut huge = br#"{"name":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    huge.extend(br#"","scopes":["*"]}"#);
    let res = post(huge, "application/json").go().await;
    assert_problem(res, 413, "payload_too_large").await;

    let res = post(vec![0xff, 0xfe, 0x00], "application/json").go().await;
    assert_problem(res, 400, "malformed_json").await;
}

/// A body of the wrong shape names the field at fault by its path, in plain words, in
/// `field` and `detail`; serde's "invalid type: map, expected a sequence at line 1
/// column 54" never reaches the caller.
#[tokio::test(flavor = "multi_thread")]
async fn type_errors_name_the_field_in_plain_words() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            "PATCH",
            "/api/v1/slack/messages/01J0000000000000000000000",
            r#"{"title": "x", "fields": {"region": "eu"}}"#,
            "fields",
            "fields: expected a list of {title, value}, not an object",
        ),
        (
            "POST",
            "/api/v1/slack/messages",
            r#"{"level": "info", "title": "Deploy", "fields": {"region": "eu"}}"#,
            "fields",
            "fields: expected a list of {title, value}, not an object",
        ),
        (
            "POST",
            "/api/v1/slack/messages",
            r#"{"level": "info", "title": "Deploy", "fields": [{"title": "a", "value": "b"}, {"title": 7, "value": "c"}]}"#,
            "fields[1].title",
            "fields[1].title: expected text, not the number 7",
        ),
        (
            "POST",
            "/api/v1/slack/messages",
            r#"{"level": "info", "title": "Deploy", "fields": ["region"]}"#,
            "fields[0]",
            r#"fields[0]: expected an object {title, value}, not the text "region""#,
        ),
        (
            "POST",
            "/api/v1/emails",
            r#"{"to": 42, "subject": "Hi", "text": "Hello"}"#,
            "to",
            "to: expected an address or a list of addresses, not the number 42",
        ),
        (
            "POST",
            "/api/v1/emails",
            r#"{"to": ["a@example.com", false], "subject": "Hi", "text": "Hello"}"#,
            "to[1]",
            "to[1]: expected text, not false",
        ),
        (
            "POST",
            "/api/v1/licenses",
            r#"{"product": "client", "name": "Seat", "owner_email": "it@example.com", "max_machines": "five"}"#,
            "max_machines",
            r#"max_machines: expected a whole number, not the text "five""#,
        ),
        (
            "POST",
            "/api/v1/licenses",
            r#"{"product": "desktop", "name": "Seat", "owner_email": "it@example.com"}"#,
            "product",
            "product: expected `client` or `platform`, not `desktop`",
        ),
        (
            "POST",
            "/api/v1/licenses",
            r#"{"product": "client", "owner_email": "it@example.com"}"#,
            "name",
            "name: required, but missing",
        ),
        (
            "POST",
            "/api/v1/api-keys",
            r#"{"name": "k", "scopes": ["emails:send"], "colour": "red"}"#,
            "colour",
            "colour: not a known field; known fields: name, scopes, expires_at",
        ),
    ];
    for (method, path, body, field, detail) in cases {
        let res = app
            .admin(method.parse().unwrap(), path)
            .header("content-type", "application/json")
            .body(body)
            .go()
            .await;
        let problem = assert_problem(res, 422, "invalid_body").await;
        assert_eq!(problem["field"], field, "{path} {body}: {problem}");
        assert_eq!(problem["detail"], detail, "{path} {body}: {problem}");
    }

    // Not JSON at all: still 400 `malformed_json` with the line and column.
    let res = app
        .admin(Method::POST, "/api/v1/slack/messages")
        .header("content-type", "application/json")
        .body("{\"level\": \"info\",\n \"title\": }")
        .go()
        .await;
    let problem = assert_problem(res, 400, "malformed_json").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("line 2 column"),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_limit_is_configurable() {
    let app = TestApp::with_vars(&[("MAX_JSON_BODY_BYTES", "64")], None).await;
    let res = send_json(
        &app,
        Method::POST,
        "/api/v1/api-keys",
        &serde_json::json!({ "name": "x".repeat(100), "scopes": ["*"] }),
    )
    .await;
    let body = assert_problem(res, 413, "payload_too_large").await;
    assert!(body["detail"].as_str().unwrap().contains("64"));
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_and_others_are_still_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::with_vars(&[("BODY_IDLE_TIMEOUT_SECS", "2")], None).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    // Slowloris: headers that never end, from several connections at once.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // A body announced and never sent.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.admin_key
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    // Meanwhile an ordinary client is served at once.
    let started = std::time::Instant::now();
    let res = app.client.get(app.url("/healthz")).go().await;
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // The slow ones are answered (408) or dropped within the server's timeouts.
    for mut s in slow.into_iter().chain([stalled]) {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(15), s.read_to_end(&mut buf)).await;
        let closed = match read {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            Err(_) => false,
        };
        assert!(
            closed,
            "a slow connection was held open: {:?}",
            String::from_utf8_lossy(&buf)
        );
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 400"),
            "{text}"
        );
    }
}

/// JSON nested far deeper than any document of ours: refused as malformed (serde's
/// recursion limit) on every kind of body, and moderately deep documents still round-trip.
#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_bodies_are_refused_not_recursed() {
    let app = TestApp::spawn().await;
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let nested_object = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    // Where the body's type allows any JSON (documents, metadata), the parser's recursion
    // limit stops it (400); where it does not, the first wrong token does (422).
    let recursion = (400, "malformed_json", "recursion limit");
    let bodies = [
        (
            "PUT",
            "/api/v1/data/notes/deep",
            format!("{{\"v\":{}}}", deep(100_000)),
            recursion,
        ),
        ("PUT", "/api/v1/data/notes/deep", nested_object(100_000), recursion),
        (
            "POST",
            "/api/v1/licenses",
            format!(
                "{{\"product\":\"client\",\"name\":\"x\",\"metadata\":{}}}",
                nested_object(10_000)
            ),
            recursion,
        ),
        ("POST", "/api/v1/events", deep(100_000), (405, "method_not_allowed", "")),
        (
            "POST",
            "/api/v1/api-keys",
            deep(100_000),
            (422, "invalid_body", "expected text, not a list"),
        ),
        (
            "POST",
            "/api/v1/licenses/validate",
            format!("{{\"key\":{}}}", deep(20_000)),
            (422, "invalid_body", "key: expected text, not a list"),
        ),
    ];
    for (method, path, body, (status, code, detail)) in bodies {
        let res = app
            .admin(method.parse().unwrap(), path)
            .header("content-type", "application/json")
            .body(body)
            .go()
            .await;
        let problem = assert_problem(res, status, code).await;
        assert!(
            problem["detail"].as_str().unwrap_or_default().contains(detail),
            "{path}: {problem}"
        );
    }
    // 100 levels is well within the limit: stored and read back exactly.
    let doc: serde_json::Value = serde_json::from_str(&nested_object(100)).unwrap();
    let res = send_json(&app, Method::PUT, "/api/v1/data/notes/deep", &doc).await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let back: serde_json::Value = app.get_json("/api/v1/data/notes/deep").await;
    assert_eq!(back["data"], doc, "{back}");
}

/// Routes read before any API key is checked take only small bodies: licence holder
/// routes 64 KiB, the SNS endpoint 260 KiB (SNS's own maximum is 256 KiB).
#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_routes_take_only_small_bodies() {
    let app = TestApp::spawn().await;
    let padded = |n: usize| format!("{{\"key\":\"x\",\"pad\":\"{}\"}}", "a".repeat(n));
    for path in ["validate", "activate", "deactivate", "heartbeat", "checkout"] {
        let res = app
            .client
            .post(app.url(&format!("/api/v1/licenses/{path}")))
            .header("content-type", "application/json")
            .body(padded(70 * 1024))
            .go()
            .await;
        let problem = assert_problem(res, 413, "payload_too_large").await;
        assert!(problem["detail"].as_str().unwrap().contains("65536"), "{problem}");
    }
    let res = app
        .client
        .post(app.url("/api/v1/emails/events/sns"))
        .header("content-type", "text/plain")
        .body(padded(300 * 1024))
        .go()
        .await;
    assert_problem(res, 413, "payload_too_large").await;
    // Under the limit, the body is read and judged on its content.
    let res = app
        .client
        .post(app.url("/api/v1/licenses/validate"))
        .header("content-type", "application/json")
        .body(padded(60 * 1024))
        .go()
        .await;
    assert_problem(res, 422, "invalid_body").await;
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Opens `n` flooding connections: idle ones, unfinished request heads, and bodies
/// announced at 60,000 bytes and stalled after 32 KiB on the unauthenticated validate route.
async fn flood(port: u16, n: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let chunk = vec![b' '; 32 * 1024];
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        match i % 3 {
            0 => {}
            1 => s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
                .await
                .unwrap(),
            _ => {
                let head = "POST /api/v1/licenses/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n";
                s.write_all(head.as_bytes()).await.unwrap();
                let _ = s.write_all(&chunk).await;
            }
        }
        open.push(s);
    }
    open
}

/// A flood of connections against the real binary, twice. Ordinary clients are still
/// served meanwhile, the server closes every flooding connection within its timeouts,
/// memory stays within a per-connection bound, and a second flood does not raise it (no
/// leak: what the first one took is reused).
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_flood_is_shed_with_bounded_memory() {
    use tokio::io::AsyncReadExt;
    const FLOOD: usize = 1_500;
    let dir = tempfile::tempdir().unwrap();
    let (child, port, _logs) = crate::cli::serve(
        dir.path(),
        &[
            ("HTTP_WORKERS", "2"),
            ("BODY_IDLE_TIMEOUT_SECS", "3"),
            // The flood comes from one address; this test is about what 1,500 held
            // connections cost, so that address may hold them all.
            ("MAX_CONNECTIONS_PER_ADDRESS", "2000"),
            ("SECRET_KEY", crate::helpers::SECRET),
        ],
    );
    let pid = child.id();
    let base_url = format!("http://127.0.0.1:{port}");
    // An ordinary client: another address than the flood's.
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
        .build()
        .unwrap();
    for _ in 0..200 {
        assert_eq!(client.get(format!("{base_url}/readyz")).go().await.status(), 200);
    }
    let before = rss_kib(pid);
    let mut peaks = Vec::new();
    for round in 1..=2 {
        let open = flood(port, FLOOD).await;
        let served = client.get(format!("{base_url}/healthz")).go().await;
        assert_eq!(served.status(), 200, "an ordinary client is served during the flood");
        let mut peak = 0;
        for _ in 0..10 {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let mut answered = 0;
        for mut s in open {
            let mut buf = Vec::new();
            let read = tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut buf)).await;
            assert!(read.is_ok(), "a flooding connection was held open");
            answered += usize::from(!buf.is_empty());
        }
        eprintln!(
            "flood {round} of {FLOOD} connections: RSS {} MiB before, {} MiB at the peak; {answered} answered before closing",
            before / 1024,
            peak / 1024,
        );
        peaks.push(peak);
    }
    // About 3 copies of an unauthenticated body (read buffer, payload, JSON buffer) plus
    // the connection's own buffers: well under 256 KiB a connection.
    let bound = before + (FLOOD as u64) * 256;
    assert!(peaks[0] < bound, "memory grew by {} MiB", (peaks[0] - before) / 1024);
    assert!(
        peaks[1] < peaks[0] + 32 * 1024,
        "a second flood took {} MiB more",
        (peaks[1] - peaks[0]) / 1024
    );
    assert_eq!(client.get(format!("{base_url}/healthz")).go().await.status(), 200);
}

/// The review's attack: connections trickling a byte now and then into a route read
/// before any key (licence validation) took every slot (`MAX_CONNECTIONS=32`) and
/// `/healthz` timed out. Now one address holds at most `MAX_CONNECTIONS_PER_ADDRESS`
/// (the rest are closed at once) and those few are answered 408 when their body has not
/// arrived within `PUBLIC_BODY_TIMEOUT_SECS`, though it never stops flowing.
#[tokio::test(flavor = "multi_thread")]
async fn trickled_bodies_from_one_address_cannot_take_every_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::with_vars(
        &[
            ("MAX_CONNECTIONS", "32"),
            ("MAX_CONNECTIONS_PER_ADDRESS", "8"),
            ("PUBLIC_BODY_TIMEOUT_SECS", "3"),
            ("BODY_IDLE_TIMEOUT_SECS", "30"),
        ],
        None,
    )
    .await;
    let addr: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let head = "POST /api/v1/licenses/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    let (mut readers, mut writers) = (Vec::new(), Vec::new());
    for _ in 0..34 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let (r, mut w) = stream.into_split();
        let _ = w.write_all(head.as_bytes()).await;
        readers.push(r);
        writers.push(w);
    }
    // One byte a second on every connection: never idle, never done.
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            for w in &mut writers {
                let _ = w.write_all(b" ").await;
            }
        }
    });
    // Another client is served meanwhile (the client's timeout only guards against a hang).
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    let res = other.get(app.url("/healthz")).send().await;
    assert!(
        res.as_ref().is_ok_and(|r| r.status() == 200),
        "/healthz was not served while one address trickled bodies: {res:?}"
    );
    // Every trickling connection ends: 8 with 408 once their time is up, the rest at once
    // without a word.
    let mut answered = 0;
    for mut r in readers {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), r.read_to_end(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(_))) || matches!(&read, Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "a trickling connection was held open: {read:?}"
        );
        let text = String::from_utf8_lossy(&buf);
        if !text.is_empty() {
            assert!(text.starts_with("HTTP/1.1 408"), "{text}");
            assert!(
                text.contains("request_timeout") && text.contains("did not arrive within 3 s"),
                "{text}"
            );
            answered += 1;
        }
    }
    assert_eq!(answered, 8, "only MAX_CONNECTIONS_PER_ADDRESS connections are served");
    trickle.abort();
}

/// A chunked body nobody reads (refused before reading, or cut off by a deadline) must not
/// keep its connection: actix drains the rest of a chunked body whose reader was dropped,
/// with no timer, so a client that then sends nothing held the connection forever.
#[tokio::test(flavor = "multi_thread")]
async fn unread_chunked_bodies_do_not_hold_their_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::with_vars(&[("PUBLIC_BODY_TIMEOUT_SECS", "2")], None).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let cases = [
        // Refused by the key check before the body is read.
        ("/api/v1/emails", "HTTP/1.1 401"),
        // Read before any key, and cut off by the whole-body deadline.
        ("/api/v1/licenses/validate", "HTTP/1.1 408"),
    ];
    for (path, answer) in cases {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{{\"a\":"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(15), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(
            matches!(read, Ok(Ok(_))),
            "{path}: the connection was still open 15 s after {answer}: {text:?}"
        );
        assert!(text.starts_with(answer), "{path}: {text}");
    }
}
