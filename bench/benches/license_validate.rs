//! Licence validation over HTTP on loopback against MariaDB, beside a raw indexed
//! `SELECT` loop through the same driver at the same concurrency.
//!
//! Both sides spread their calls over `BENCH_KEYS` licences (default 1,000), as real
//! traffic does; the raw loop runs its `SELECT` as a cached prepared statement (the
//! cheapest way through the driver), so the ratio is to a true floor.
//!
//! Goals: validation at 60% or more of the raw `SELECT` rate; p99 under 10 ms at 64
//! connections. Needs MariaDB at `TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`). `BENCH_SECS` (default 10) and
//! `BENCH_CONCURRENCY` (default 64) tune the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The gateway's own allocator (`bins/gateway/src/main.rs`): the server runs in-process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use gateway::app::Application;
use gateway::config::Config;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use license_core::model::{IssueLicense, Product};
use shared_db::testing::TestDb;
use shared_db::{DbConn, DbPool, PoolOptions};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Run {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

impl Run {
    /// One line of the report: `label` then the rate, the percentiles and the errors.
    fn print(&self, label: &str) {
        let (p50, p99) = (self.p50.as_secs_f64() * 1e3, self.p99.as_secs_f64() * 1e3);
        println!(
            "  {label} {:.0}/s  p50 {p50:.2} ms  p99 {p99:.2} ms  errors {}",
            self.per_sec, self.errors
        );
    }
}

/// Runs `concurrency` copies of `op` for `secs` seconds (after one second of warm-up).
async fn drive<F, Fut>(concurrency: usize, secs: u64, op: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = bool> + Send,
{
    let warm_until = Instant::now() + Duration::from_secs(1);
    let stop_at = warm_until + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let started = Instant::now();
                if started >= stop_at {
                    return (latencies, errors);
                }
                let ok = op(worker).await;
                if started >= warm_until {
                    latencies.push(started.elapsed());
                    errors += usize::from(!ok);
                }
            }
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    Run {
        per_sec: all.len() as f64 / secs as f64,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        errors,
    }
}

diesel::table! {
    #[sql_name = "eb_licenses"]
    licenses (id) {
        id -> Text,
        key_digest -> Text,
    }
}

#[tokio::main]
async fn main() {
    let secs = env_num("BENCH_SECS", 10);
    let concurrency = env_num("BENCH_CONCURRENCY", 64) as usize;
    let Some(db) = TestDb::mysql().await else {
        println!("license_validate: skipped: no MariaDB at TEST_MYSQL_URL");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let db_url = db.url.expose_target().to_owned();
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db_url.clone()),
        ("SECRET_KEY", "bench-secret-0123456789abcdef0123".into()),
        ("APP_HOST", "127.0.0.1".into()),
        ("APP_PORT", "0".into()),
        ("DATA_DIR", data.path().to_string_lossy().into_owned()),
        ("BLOB_DIR", data.path().join("blobs").to_string_lossy().into_owned()),
        ("LOG_LEVEL", "warn".into()),
        ("LICENSE_RATE_LIMIT_PER_MINUTE", "1000000000".into()),
        ("LICENSE_KEY_RATE_LIMIT_PER_MINUTE", "1000000000".into()),
    ]);
    // The gateway as shipped (one HTTP worker per core, a pool of 10 connections: holder
    // calls share look-ups, so they need few), unless `BENCH_HTTP_WORKERS` or
    // `BENCH_POOL_SIZE` say otherwise.
    let workers = std::env::var("BENCH_HTTP_WORKERS").ok();
    let pool_size = std::env::var("BENCH_POOL_SIZE").ok();
    let config = Config::from_lookup(|k| match k {
        "HTTP_WORKERS" => workers.clone(),
        "DB_POOL_SIZE" => pool_size.clone(),
        _ => vars.get(k).cloned(),
    })
    .unwrap();
    let app = Application::build(config).await.unwrap();
    let port = app.port();
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());

    let keys_wanted = env_num("BENCH_KEYS", 1000) as usize;
    let mut keys = Vec::with_capacity(keys_wanted);
    for i in 0..keys_wanted {
        let (_, key) = state
            .licenses
            .issue(
                // The request as the API reads it: the fields not named take their defaults.
                serde_json::from_value::<IssueLicense>(serde_json::json!({
                    "product": Product::Client,
                    "name": format!("bench {i}"),
                    "owner_email": "bench@example.com",
                    "duration": "365d",
                    "max_machines": 10,
                    "entitlements": ["sso"],
                }))
                .unwrap(),
                "bench",
            )
            .await
            .unwrap();
        keys.push(key);
    }
    // Each call takes the next key, round robin over all of them.
    let next = Arc::new(AtomicUsize::new(0));

    // Validation over HTTP, one keep-alive HTTP/1.1 connection per concurrent client.
    // The client is hyper's bare connection (no pool, no URL parsing per call): it
    // shares the cores with the server, so the cheaper it is, the more the figure
    // measures the server.
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        keys.iter()
            .map(|k| {
                Bytes::from(
                    serde_json::json!({ "key": k.as_str(), "product": "client", "entitlements": ["sso"] }).to_string(),
                )
            })
            .collect(),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        senders.push(Arc::new(tokio::sync::Mutex::new(sender)));
    }
    let http_next = next.clone();
    let http = drive(concurrency, secs, move |worker| {
        let sender = senders[worker].clone();
        let body = bodies[http_next.fetch_add(1, Ordering::Relaxed) % bodies.len()].clone();
        async move {
            let mut sender = sender.lock().await;
            let request = hyper::Request::post("/api/v1/licenses/validate")
                .header(hyper::header::HOST, "127.0.0.1")
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))
                .unwrap();
            let Ok(res) = sender.send_request(request).await else {
                return false;
            };
            res.status() == 200
                && res
                    .into_body()
                    .collect()
                    .await
                    .is_ok_and(|b| b.to_bytes().windows(12).any(|w| w == b"\"valid\":true"))
        }
    })
    .await;

    // The same number of connections, each running the indexed look-up in a loop.
    let raw_pool = DbPool::new(
        db.url.clone(),
        PoolOptions {
            max_size: concurrency,
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let digests: Arc<Vec<String>> = {
        let mut conn = raw_pool.get().await.unwrap();
        let DbConn::Mysql(c) = &mut *conn else { panic!("mysql") };
        Arc::new(licenses::table.select(licenses::key_digest).load(c).await.unwrap())
    };
    let mut conns = Vec::new();
    for _ in 0..concurrency {
        conns.push(Arc::new(tokio::sync::Mutex::new(raw_pool.get().await.unwrap())));
    }
    let raw = drive(concurrency, secs, move |worker| {
        let conn = conns[worker].clone();
        let digest = digests[next.fetch_add(1, Ordering::Relaxed) % digests.len()].clone();
        async move {
            let mut guard = conn.lock().await;
            let DbConn::Mysql(c) = &mut **guard else { return false };
            // A typed query: diesel keeps it prepared (raw `sql_query` text is prepared
            // and closed on every call).
            licenses::table
                .filter(licenses::key_digest.eq(digest))
                .select(licenses::id)
                .first::<String>(c)
                .await
                .is_ok_and(|id| !id.is_empty())
        }
    })
    .await;

    let ratio = http.per_sec / raw.per_sec.max(1.0);
    println!(
        "license_validate: {concurrency} connections, {secs} s, {} licences, MariaDB, loopback, client and server on the same cores",
        keys.len()
    );
    http.print("HTTP validate:");
    raw.print("raw SELECT:   ");
    println!(
        "  ratio validate/raw {ratio:.2} (goal >= 0.60); p99 {:.2} ms (goal < 10 ms)",
        http.p99.as_secs_f64() * 1e3
    );
    drop(db);
}
