//! `eb` against a gateway running in this process: transfers (with a resumed and a
//! corrupted download), licences, email, the tail, and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gateway::app::Application;
use gateway::config::Config;
use secrecy::ExposeSecret;

struct Gateway {
    url: String,
    key: String,
    _data: tempfile::TempDir,
}

async fn gateway() -> Gateway {
    let data = tempfile::tempdir().unwrap();
    let vars: HashMap<String, String> = [
        ("APP_HOST", "127.0.0.1".to_owned()),
        ("APP_PORT", "0".to_owned()),
        ("SECRET_KEY", "eb-cli-tests-secret-0123456789abcdef".to_owned()),
        ("HTTP_WORKERS", "1".to_owned()),
        ("DATA_DIR", data.path().to_string_lossy().into_owned()),
        ("MAIL_TRANSPORT", "dev".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let app = Application::build(config).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    let mut conn = state.pool.get().await.unwrap();
    let key = state
        .api_keys
        .create(&mut conn, "eb tests", &["*".into()], None, None)
        .await
        .unwrap()
        .secret
        .expose_secret()
        .to_owned();
    Gateway { url, key, _data: data }
}

/// Runs `eb` off the runtime's threads (the gateway answers on them).
async fn eb(g: &Gateway, args: &[&str]) -> Output {
    let (url, key) = (g.url.clone(), g.key.clone());
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_eb"))
            .args(&args)
            .env("EB_URL", url)
            .env("EB_KEY", key)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "eb failed: {}", text(o));
    text(o)
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_stream_verify_their_checksum_and_resume() {
    let g = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("model.bin");
    let content: Vec<u8> = (0..3 * 1024 * 1024 + 7).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    let sha = data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, &content).as_ref());

    let out = ok(&eb(
        &g,
        &["blobs", "put", source.to_str().unwrap(), "ai/models/model v1.bin"],
    )
    .await);
    assert!(out.contains(&sha), "{out}");
    // Not a terminal: plain progress lines, ending with the total.
    assert!(
        out.contains(&format!("{} of {} bytes (100%)", content.len(), content.len())),
        "{out}"
    );

    let listing = ok(&eb(&g, &["blobs", "ls", "ai/models/"]).await);
    assert!(
        listing.contains("models/model v1.bin") && listing.contains(&content.len().to_string()),
        "{listing}"
    );

    let dest = dir.path().join("copy.bin");
    let out = ok(&eb(&g, &["blobs", "get", "ai/models/model v1.bin", dest.to_str().unwrap()]).await);
    assert!(out.contains(", verified)"), "{out}");
    assert_eq!(std::fs::read(&dest).unwrap(), content);

    // An interrupted download left the first megabyte: the next run fetches the rest only.
    let resumed = dir.path().join("resumed.bin");
    std::fs::write(dir.path().join("resumed.bin.part"), &content[..1024 * 1024]).unwrap();
    let out = ok(&eb(
        &g,
        &["blobs", "get", "ai/models/model v1.bin", resumed.to_str().unwrap()],
    )
    .await);
    assert!(
        out.contains("resuming ai/models/model v1.bin after 1048576 bytes"),
        "{out}"
    );
    assert_eq!(std::fs::read(&resumed).unwrap(), content);
    assert!(!Path::new(&format!("{}.part", resumed.display())).exists());

    // A partial file already as long as the object is fetched again whole (no 416).
    let full = dir.path().join("full.bin");
    std::fs::write(dir.path().join("full.bin.part"), &content).unwrap();
    ok(&eb(&g, &["blobs", "get", "ai/models/model v1.bin", full.to_str().unwrap()]).await);
    assert_eq!(std::fs::read(&full).unwrap(), content);

    // A partial file that is not the object's start fails the final checksum and is removed.
    let bad = dir.path().join("bad.bin");
    std::fs::write(dir.path().join("bad.bin.part"), vec![0u8; 1000]).unwrap();
    let out = eb(&g, &["blobs", "get", "ai/models/model v1.bin", bad.to_str().unwrap()]).await;
    assert!(
        !out.status.success() && text(&out).contains("checksum mismatch"),
        "{}",
        text(&out)
    );
    assert!(!bad.exists() && !dir.path().join("bad.bin.part").exists());

    ok(&eb(&g, &["blobs", "rm", "ai/models/model v1.bin"]).await);
    let out = eb(&g, &["blobs", "get", "ai/models/model v1.bin", dest.to_str().unwrap()]).await;
    assert!(!out.status.success() && text(&out).contains("404"), "{}", text(&out));
}

/// The file's modification time as `eb` records it in its state file.
fn mtime_ns(path: &Path) -> u64 {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    u64::try_from(modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn large_files_go_up_in_parts_and_an_interrupted_upload_resumes() {
    let g = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let mib = 1024 * 1024;
    let content: Vec<u8> = (0..11 * mib + 5).map(|i| ((i * 13 + i / 4093) % 256) as u8).collect();
    let sha = data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, &content).as_ref());

    // Larger than one part of 5 MiB: three parts, verified at the end.
    let source = dir.path().join("weights.bin");
    std::fs::write(&source, &content).unwrap();
    let out = ok(&eb(
        &g,
        &[
            "blobs",
            "put",
            source.to_str().unwrap(),
            "ai/big/one.bin",
            "--part-size",
            "5",
        ],
    )
    .await);
    assert!(
        out.contains("in 3 parts") && out.contains(&sha) && out.contains("(verified)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{} of {} bytes (100%)", content.len(), content.len())),
        "{out}"
    );
    assert!(
        !dir.path().join("weights.bin.eb-upload").exists(),
        "the state file is gone"
    );
    let copy = dir.path().join("one.bin");
    ok(&eb(&g, &["blobs", "get", "ai/big/one.bin", copy.to_str().unwrap()]).await);
    assert!(std::fs::read(&copy).unwrap() == content);

    // An earlier run started the upload, sent part 1 and was interrupted.
    let second = dir.path().join("second.bin");
    std::fs::write(&second, &content).unwrap();
    let http = reqwest::Client::new();
    let upload: serde_json::Value = http
        .post(format!("{}/api/v1/blobs/ai/uploads", g.url))
        .bearer_auth(&g.key)
        .json(&serde_json::json!({"key": "big/two.bin", "size": content.len(), "sha256": sha, "part_size": 5 * mib}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = upload["id"].as_str().unwrap();
    let res = http
        .put(upload["parts"][0]["url"].as_str().unwrap())
        .body(content[..5 * mib].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let state = serde_json::json!({
        "upload_id": id, "target": "ai/big/two.bin", "size": content.len(), "mtime_ns": mtime_ns(&second),
    });
    std::fs::write(dir.path().join("second.bin.eb-upload"), state.to_string()).unwrap();
    let out = ok(&eb(
        &g,
        &[
            "blobs",
            "put",
            second.to_str().unwrap(),
            "ai/big/two.bin",
            "--part-size",
            "5",
        ],
    )
    .await);
    assert!(
        out.contains(&format!("resumed upload {id}: 1 parts were already there, 2 sent")),
        "{out}"
    );
    assert!(out.contains("(verified)"), "{out}");
    assert!(!dir.path().join("second.bin.eb-upload").exists());
    let copy = dir.path().join("two.bin");
    ok(&eb(&g, &["blobs", "get", "ai/big/two.bin", copy.to_str().unwrap()]).await);
    assert!(std::fs::read(&copy).unwrap() == content);

    // A state file naming an upload that is gone: a new upload.
    let state = serde_json::json!({
        "upload_id": id, "target": "ai/big/three.bin", "size": content.len(), "mtime_ns": mtime_ns(&second),
    });
    std::fs::write(dir.path().join("second.bin.eb-upload"), state.to_string()).unwrap();
    let out = ok(&eb(
        &g,
        &[
            "blobs",
            "put",
            second.to_str().unwrap(),
            "ai/big/three.bin",
            "--part-size",
            "5",
        ],
    )
    .await);
    assert!(out.contains("is gone") && out.contains("(verified)"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn licences_and_email_from_the_command_line() {
    let g = gateway().await;
    let out = ok(&eb(
        &g,
        &[
            "--json",
            "licenses",
            "issue",
            "--product",
            "client",
            "--name",
            "CLI",
            "--owner",
            "cli@example.com",
            "--max-machines",
            "2",
            "--entitlement",
            "export",
        ],
    )
    .await);
    let json_start = out.find('{').unwrap();
    let issued: serde_json::Value = serde_json::from_str(&out[json_start..]).unwrap();
    let (id, key) = (issued["id"].as_str().unwrap(), issued["key"].as_str().unwrap());
    assert!(ok(&eb(&g, &["licenses", "show", id]).await).contains("active"));
    assert!(ok(&eb(&g, &["licenses", "validate", key]).await).contains("valid: valid"));
    assert!(ok(&eb(&g, &["licenses", "suspend", id]).await).contains("suspended"));
    let out = eb(&g, &["licenses", "validate", key]).await;
    assert!(
        !out.status.success() && text(&out).contains("suspended"),
        "{}",
        text(&out)
    );

    let out = ok(&eb(
        &g,
        &[
            "--json",
            "emails",
            "send",
            "--to",
            "a@example.com",
            "--subject",
            "안녕",
            "--text",
            "본문",
        ],
    )
    .await);
    let queued: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    let shown = ok(&eb(&g, &["emails", "show", queued["id"].as_str().unwrap()]).await);
    assert!(shown.contains("안녕") && shown.contains("email.queued"), "{shown}");
    let out = eb(
        &g,
        &[
            "emails",
            "send",
            "--to",
            "not an address",
            "--subject",
            "x",
            "--text",
            "y",
        ],
    )
    .await;
    assert!(!out.status.success() && text(&out).contains("422"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_shown_as_problems() {
    let g = gateway().await;
    let bad = Gateway {
        url: g.url.clone(),
        key: "eb_not_a_key".into(),
        _data: tempfile::tempdir().unwrap(),
    };
    let out = eb(&bad, &["licenses", "show", "lic_x"]).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("401"), "{}", text(&out));
    let out = eb(&g, &["blobs", "put", "/no/such/file", "ai/x"]).await;
    assert!(
        !out.status.success() && text(&out).contains("/no/such/file"),
        "{}",
        text(&out)
    );
    let out = eb(&g, &["blobs", "get", "no-slash", "/tmp/x"]).await;
    assert!(text(&out).contains("expected NAMESPACE/KEY"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tail_prints_new_events() {
    let g = gateway().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_eb"))
        .args(["events", "tail", "--type", "license.*"])
        .env("EB_URL", &g.url)
        .env("EB_KEY", &g.key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("license.issued"))
    });
    for _ in 0..50 {
        ok(&eb(
            &g,
            &[
                "licenses",
                "issue",
                "--product",
                "client",
                "--name",
                "Tail",
                "--owner",
                "t@example.com",
            ],
        )
        .await);
        if reader.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let line = reader.await.unwrap().expect("the tail printed no license.issued line");
    assert!(line.contains("license:"), "{line}");
}
