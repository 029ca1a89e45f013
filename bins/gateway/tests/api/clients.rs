//! The clients' own tests (clients/python/tests with pytest, clients/typescript/test with
//! `node --test` on the committed build), run against this gateway: the README's test
//! command runs them with everything else.

use std::path::Path;

use crate::helpers::TestApp;

/// Node.js 20 or newer; required under CI=true, else the test says it is skipped.
fn node_20() -> bool {
    let version = std::process::Command::new("node").arg("--version").output();
    let major = version
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.trim().trim_start_matches('v').split('.').next()?.parse::<u32>().ok());
    let ok = major.is_some_and(|m| m >= 20);
    if !ok {
        assert!(
            !shared_db::testing::in_ci(),
            "Node.js 20 or newer is required under CI=true"
        );
        eprintln!("SKIPPED: the TypeScript client's tests: Node.js 20 or newer is not installed");
    }
    ok
}

/// Runs one client's suite against a fresh gateway with the dev mailbox and Slack sink;
/// returns its output.
async fn run_suite(dir: &str, program: &str, args: &[&str]) -> String {
    let app = TestApp::with_vars(&[("MAIL_TRANSPORT", "dev"), ("SLACK_TRANSPORT", "dev")], None).await;
    let client_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients").join(dir);
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(&client_dir)
        .env("PYTHONPATH", &client_dir)
        .env("EB_URL", &app.address)
        .env("EB_KEY", &app.admin_key)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the {dir} client's tests failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_passes_its_tests_against_this_gateway() {
    // The client's dependencies (httpx, cryptography) and its runner.
    if !shared_db::testing::python_with("httpx, pytest, cryptography", "the Python client's tests") {
        return;
    }
    let stdout = run_suite(
        "python",
        "python3",
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
    )
    .await;
    assert!(stdout.contains(" passed"), "pytest ran nothing:\n{stdout}");
    assert!(
        !stdout.contains("skipped"),
        "a Python client test was skipped:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_client_passes_its_tests_against_this_gateway() {
    if !node_20() {
        return;
    }
    let stdout = run_suite("typescript", "node", &["--test", "test/"]).await;
    assert!(stdout.contains("# fail 0"), "node --test reported failures:\n{stdout}");
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok());
    assert!(
        passed.is_some_and(|n| n >= 7),
        "node --test ran too few tests:\n{stdout}"
    );
    assert!(
        stdout.contains("# skipped 0"),
        "a TypeScript client test was skipped:\n{stdout}"
    );
}
