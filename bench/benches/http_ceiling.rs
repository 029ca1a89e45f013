//! Licence validation against the gateway's own HTTP ceiling: the release `gateway`
//! binary, started as its own process on MariaDB with the licence rate limits lifted,
//! answers `POST /api/v1/licenses/validate` and then `GET /healthz` at the same
//! concurrency, in alternating rounds; each round prints both rates, their p99 and the
//! ratio, and the end prints the ranges and the gateway's RSS.
//!
//! Goal: validation at 50% or more of `/healthz` in the same round, with a p99 under
//! 5 ms at 64 connections. Each measurement also prints the gateway's CPU time per
//! request (from `/proc/<pid>/stat`), which other load on the machine barely moves.
//!
//! The load comes from `wrk` (Debian's `wrk`) when it is installed, else from bare hyper
//! HTTP/1.1 connections in this process (one per concurrent client, as
//! `license_validate` does). Either way the client shares the cores with the gateway and
//! MariaDB: the ratio of two rates measured minutes apart on the same machine survives
//! that; the absolute rates do not.
//!
//! Needs the release binary (`cargo build --release -p gateway`; found in
//! `$CARGO_TARGET_DIR/release`, `target/release` or `BENCH_GATEWAY`) and MariaDB at
//! `TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`). `BENCH_SECS` (10 per
//! measurement), `BENCH_ROUNDS` (3), `BENCH_CONCURRENCY` (64), `BENCH_KEYS` (1,000
//! licences, validated round robin) and `BENCH_CLIENT=hyper` (skip wrk) tune the run.
//! The gateway inherits this process's environment, so `HTTP_WORKERS`, `DB_POOL_SIZE` or
//! `MIMALLOC_*` set here reach it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use shared_db::testing::TestDb;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One measurement: requests per second, p99 and the requests that failed.
#[derive(Clone, Copy)]
struct Figures {
    requests: f64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// The gateway's CPU time (user and system, all its threads) per request: unlike the
    /// rates, barely moved by what else runs on the machine.
    cpu_us: f64,
}

impl Figures {
    fn line(&self) -> String {
        format!(
            "{:>7.0}/s  p50 {:.2} ms  p99 {:.2} ms  gateway CPU {:.1} µs/request  errors {}",
            self.per_sec, self.p50_ms, self.p99_ms, self.cpu_us, self.errors
        )
    }
}

/// What one measurement sends.
enum Load<'a> {
    /// `POST /api/v1/licenses/validate` with each of these bodies in turn.
    Validate(&'a [String]),
    /// `GET /healthz`.
    Health,
}

impl Load<'_> {
    fn path(&self) -> &'static str {
        match self {
            Load::Validate(_) => "/api/v1/licenses/validate",
            Load::Health => "/healthz",
        }
    }

    /// What a successful answer's body holds.
    fn expect(&self) -> &'static str {
        match self {
            Load::Validate(_) => "\"valid\":true",
            Load::Health => "\"status\":\"ok\"",
        }
    }
}

fn lua_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// wrk's script: every request from a table built once per thread, every answer checked
/// for its status and `expect`, the figures printed as one line by `done`.
fn wrk_script(load: &Load<'_>) -> String {
    let mut s = String::new();
    match load {
        Load::Validate(bodies) => {
            s.push_str("local bodies = {\n");
            for b in *bodies {
                s.push_str(&lua_string(b));
                s.push_str(",\n");
            }
            s.push_str(
                r#"}
local reqs = {}
local idx = 0
function init(args)
  for i, b in ipairs(bodies) do
    reqs[i] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, b)
  end
  idx = math.random(#reqs)
end
function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
"#,
            );
        }
        Load::Health => {}
    }
    s.push_str(&format!("local expect = {}\n", lua_string(load.expect())));
    s.push_str(
        r#"bad = 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, expect, 1, true) then
    bad = bad + 1
  end
end
done = function(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do
    failed = failed + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format("\nCEILING %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    failed + e.connect + e.read + e.write + e.timeout))
end
"#,
    );
    s
}

/// One measurement through wrk: two threads, `connections` connections.
fn run_wrk(port: u16, load: &Load<'_>, connections: usize, secs: u64, dir: &Path) -> Figures {
    let script = dir.join("load.lua");
    std::fs::write(&script, wrk_script(load)).unwrap();
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--timeout",
            "5s",
            "-s",
        ])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}{}", load.path()))
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("CEILING "))
        .unwrap_or_else(|| panic!("wrk printed no figures:\n{text}"));
    let n: Vec<f64> = line.split_whitespace().map(|v| v.parse().unwrap()).collect();
    Figures {
        per_sec: n[0] / (n[1] / 1e6),
        p50_ms: n[2] / 1e3,
        p99_ms: n[3] / 1e3,
        errors: n[4] as u64,
        requests: n[0],
        cpu_us: 0.0,
    }
}

/// One measurement through bare hyper connections in this process, after one second of
/// warm-up.
async fn run_hyper(port: u16, load: &Load<'_>, connections: usize, secs: u64) -> Figures {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let bodies: Arc<Vec<Bytes>> = Arc::new(match load {
        Load::Validate(b) => b.iter().map(|s| Bytes::from(s.clone())).collect(),
        Load::Health => Vec::new(),
    });
    let (path, expect) = (load.path(), load.expect().as_bytes());
    let next = Arc::new(AtomicUsize::new(0));
    let warm_until = Instant::now() + Duration::from_secs(1);
    let stop_at = warm_until + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (bodies, next) = (bodies.clone(), next.clone());
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            loop {
                let started = Instant::now();
                if started >= stop_at {
                    return (latencies, errors);
                }
                let request = hyper::Request::builder()
                    .uri(path)
                    .header(hyper::header::HOST, "127.0.0.1");
                let request = if bodies.is_empty() {
                    request.method("GET").body(Full::new(Bytes::new()))
                } else {
                    let body = bodies[next.fetch_add(1, Ordering::Relaxed) % bodies.len()].clone();
                    request
                        .method("POST")
                        .header(hyper::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(body))
                };
                let ok = match sender.send_request(request.unwrap()).await {
                    Ok(res) if res.status() == 200 => res
                        .into_body()
                        .collect()
                        .await
                        .is_ok_and(|b| b.to_bytes().windows(expect.len()).any(|w| w == expect)),
                    _ => false,
                };
                if started >= warm_until {
                    latencies.push(started.elapsed());
                    errors += u64::from(!ok);
                }
            }
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    let at = |p: f64| all.get(((all.len().max(1) - 1) as f64 * p).round() as usize).copied();
    Figures {
        per_sec: all.len() as f64 / secs as f64,
        p50_ms: at(0.50).unwrap_or_default().as_secs_f64() * 1e3,
        p99_ms: at(0.99).unwrap_or_default().as_secs_f64() * 1e3,
        errors,
        requests: all.len() as f64,
        cpu_us: 0.0,
    }
}

fn gateway_binary() -> PathBuf {
    if let Ok(path) = std::env::var("BENCH_GATEWAY") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut candidates: Vec<PathBuf> = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(root.join("target"));
    candidates
        .iter()
        .map(|t| t.join("release").join("gateway"))
        .find(|b| b.exists())
        .unwrap_or_else(|| panic!("no release gateway in {candidates:?}: cargo build --release -p gateway"))
}

/// The CPU seconds (user and system) process `pid` has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's `(name)`: state is field 3, utime and stime fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports them in USER_HZ, 100 per second on every architecture it runs on.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Stops the gateway however the bench ends.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn range(values: impl Iterator<Item = f64>, digits: usize) -> String {
    let v: Vec<f64> = values.collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.digits$}–{hi:.digits$}")
}

#[tokio::main]
async fn main() {
    let secs = env_num("BENCH_SECS", 10);
    let rounds = env_num("BENCH_ROUNDS", 3).max(1);
    let connections = env_num("BENCH_CONCURRENCY", 64) as usize;
    let keys_wanted = env_num("BENCH_KEYS", 1000) as usize;
    let use_wrk = std::env::var("BENCH_CLIENT").as_deref() != Ok("hyper")
        && Command::new("wrk").arg("--version").output().is_ok();
    let binary = gateway_binary();
    let Some(db) = TestDb::mysql().await else {
        println!("http_ceiling: skipped: no MariaDB at TEST_MYSQL_URL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [
        ("DATABASE_URL", db.url.expose_target().to_owned()),
        ("SECRET_KEY", "bench-secret-0123456789abcdef0123".into()),
        ("APP_HOST", "127.0.0.1".into()),
        ("APP_PORT", port.to_string()),
        ("DATA_DIR", dir.path().join("data").to_string_lossy().into_owned()),
        ("BLOB_DIR", dir.path().join("blobs").to_string_lossy().into_owned()),
        ("LOG_LEVEL", "warn".into()),
        // The limits lifted: every call here comes from one address.
        ("LICENSE_RATE_LIMIT_PER_MINUTE", "1000000000".into()),
        ("LICENSE_KEY_RATE_LIMIT_PER_MINUTE", "1000000000".into()),
    ];
    let created = Command::new(&binary)
        .args(["api-keys", "create", "--name", "bench", "--scopes", "licenses:admin"])
        .envs(env.iter().cloned())
        .output()
        .expect("gateway api-keys create");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let api_key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let gateway = Gateway(
        Command::new(&binary)
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the gateway"),
    );
    let pid = gateway.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "the gateway did not become ready; its log is {:?}",
        dir.path().join("gateway.log")
    );
    let rss_started = rss_mib(pid);

    // The licences, issued through the API eight at a time.
    let next = Arc::new(AtomicUsize::new(0));
    let mut issuers = Vec::new();
    for _ in 0..8 {
        let (http, base, api_key, next) = (http.clone(), base.clone(), api_key.clone(), next.clone());
        issuers.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < keys_wanted {
                let issued: serde_json::Value = http
                    .post(format!("{base}/api/v1/licenses"))
                    .bearer_auth(&api_key)
                    .json(&serde_json::json!({
                        "product": "client",
                        "name": "bench",
                        "owner_email": "bench@example.com",
                        "duration": "365d",
                        "max_machines": 10,
                        "entitlements": ["sso"],
                    }))
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                keys.push(issued["key"].as_str().unwrap().to_owned());
            }
            keys
        }));
    }
    let mut bodies = Vec::with_capacity(keys_wanted);
    for t in issuers {
        for key in t.await.unwrap() {
            bodies.push(serde_json::json!({ "key": key, "product": "client", "entitlements": ["sso"] }).to_string());
        }
    }
    // Every licence validated once (its `last_validated_at` written), then a pause.
    for b in &bodies {
        let res = http
            .post(format!("{base}/api/v1/licenses/validate"))
            .header("content-type", "application/json")
            .body(b.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_mib(pid);

    println!(
        "http_ceiling: release gateway (pid {pid}), MariaDB, loopback, {connections} connections, {secs} s per measurement, {} licences, client {}",
        bodies.len(),
        if use_wrk {
            "wrk -t2"
        } else {
            "hyper (in the bench process)"
        }
    );
    let mut results = Vec::new();
    for round in 1..=rounds {
        let measure = async |load: Load<'_>| {
            let cpu_before = cpu_secs(pid);
            let mut figures = if use_wrk {
                run_wrk(port, &load, connections, secs, dir.path())
            } else {
                run_hyper(port, &load, connections, secs).await
            };
            // The hyper client's warm-up second is counted in the CPU, not in the requests.
            figures.cpu_us = (cpu_secs(pid) - cpu_before) * 1e6 / figures.requests.max(1.0);
            figures
        };
        let validate = measure(Load::Validate(&bodies)).await;
        let health = measure(Load::Health).await;
        let ratio = validate.per_sec / health.per_sec.max(1.0);
        println!("  round {round}: validate {}", validate.line());
        println!("           /healthz {}", health.line());
        println!("           ratio {ratio:.2}; RSS {:.1} MiB", rss_mib(pid));
        results.push((validate, health, ratio));
    }
    let rss_after = rss_mib(pid);
    println!(
        "  validate {}/s (p99 {} ms), /healthz {}/s (p99 {} ms)",
        range(results.iter().map(|r| r.0.per_sec), 0),
        range(results.iter().map(|r| r.0.p99_ms), 2),
        range(results.iter().map(|r| r.1.per_sec), 0),
        range(results.iter().map(|r| r.1.p99_ms), 2),
    );
    println!(
        "  gateway CPU per request: validate {} µs, /healthz {} µs",
        range(results.iter().map(|r| r.0.cpu_us), 1),
        range(results.iter().map(|r| r.1.cpu_us), 1),
    );
    println!(
        "  ratio validate / healthz {} (goal >= 0.50); validate p99 {} ms (goal < 5 ms); errors {}",
        range(results.iter().map(|r| r.2), 2),
        range(results.iter().map(|r| r.0.p99_ms), 2),
        results.iter().map(|r| r.0.errors + r.1.errors).sum::<u64>()
    );
    println!(
        "  gateway RSS: {rss_started:.1} MiB ready, {rss_idle:.1} MiB idle after seeding, {rss_after:.1} MiB after the load"
    );
    drop(gateway);
    drop(db);
}
