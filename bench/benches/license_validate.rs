//! Licence validation over HTTP on loopback against MariaDB, beside a raw indexed
//! `SELECT` loop through the same driver at the same concurrency.
//!
//! Goals: validation at 60% or more of the raw `SELECT` rate; p99 under 10 ms at 64
//! connections. Needs MariaDB at `TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`). `BENCH_SECS` (default 10) and
//! `BENCH_CONCURRENCY` (default 64) tune the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use gateway::app::Application;
use gateway::config::Config;
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

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

#[derive(QueryableByName)]
struct Digest {
    #[diesel(sql_type = diesel::sql_types::Text)]
    key_digest: String,
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
    let pool_size = concurrency.to_string();
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db_url.clone()),
        ("SECRET_KEY", "bench-secret-0123456789abcdef0123".into()),
        ("APP_HOST", "127.0.0.1".into()),
        ("APP_PORT", "0".into()),
        ("DATA_DIR", data.path().to_string_lossy().into_owned()),
        ("DB_POOL_SIZE", pool_size),
        ("LOG_LEVEL", "warn".into()),
        ("LICENSE_RATE_LIMIT_PER_MINUTE", "1000000000".into()),
        ("LICENSE_KEY_RATE_LIMIT_PER_MINUTE", "1000000000".into()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());

    let (_, key) = state
        .licenses
        .issue(
            IssueLicense {
                product: Product::Client,
                name: "bench".into(),
                owner_email: "bench@example.com".into(),
                expires_at: None,
                duration: Some("365d".into()),
                max_machines: Some(10),
                entitlements: vec!["sso".into()],
                metadata: serde_json::Map::new(),
                require_machine: false,
                heartbeat_interval_secs: None,
            },
            "bench",
        )
        .await
        .unwrap();

    // Validation over HTTP, one keep-alive connection per concurrent client.
    let body = serde_json::json!({ "key": key.as_str(), "product": "client", "entitlements": ["sso"] }).to_string();
    let clients: Vec<reqwest::Client> = (0..concurrency)
        .map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap())
        .collect();
    let url = format!("{base}/api/v1/licenses/validate");
    let http = drive(concurrency, secs, move |worker| {
        let client = clients[worker].clone();
        let url = url.clone();
        let body = body.clone();
        async move {
            match client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(res) => {
                    res.status() == 200
                        && res
                            .bytes()
                            .await
                            .is_ok_and(|b| b.windows(12).any(|w| w == b"\"valid\":true"))
                }
                Err(_) => false,
            }
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
    let digest = {
        let mut conn = raw_pool.get().await.unwrap();
        let DbConn::Mysql(c) = &mut *conn else { panic!("mysql") };
        let d: Digest = diesel::sql_query("SELECT key_digest FROM licenses LIMIT 1")
            .get_result(c)
            .await
            .unwrap();
        d.key_digest
    };
    let mut conns = Vec::new();
    for _ in 0..concurrency {
        conns.push(std::sync::Arc::new(tokio::sync::Mutex::new(
            raw_pool.get().await.unwrap(),
        )));
    }
    let raw = drive(concurrency, secs, move |worker| {
        let conn = conns[worker].clone();
        let digest = digest.clone();
        async move {
            let mut guard = conn.lock().await;
            let DbConn::Mysql(c) = &mut **guard else { return false };
            diesel::sql_query("SELECT id FROM licenses WHERE key_digest = ?")
                .bind::<diesel::sql_types::Text, _>(digest)
                .get_result::<Id>(c)
                .await
                .is_ok_and(|r| !r.id.is_empty())
        }
    })
    .await;

    let ratio = http.per_sec / raw.per_sec.max(1.0);
    println!(
        "license_validate: {concurrency} connections, {secs} s, MariaDB, loopback, 2 cores shared by client and server"
    );
    println!(
        "  HTTP validate: {:.0}/s  p50 {:.2} ms  p99 {:.2} ms  errors {}",
        http.per_sec,
        http.p50.as_secs_f64() * 1e3,
        http.p99.as_secs_f64() * 1e3,
        http.errors
    );
    println!(
        "  raw SELECT:    {:.0}/s  p50 {:.2} ms  p99 {:.2} ms  errors {}",
        raw.per_sec,
        raw.p50.as_secs_f64() * 1e3,
        raw.p99.as_secs_f64() * 1e3,
        raw.errors
    );
    println!(
        "  ratio validate/raw {ratio:.2} (goal >= 0.60); p99 {:.2} ms (goal < 10 ms)",
        http.p99.as_secs_f64() * 1e3
    );
    drop(db);
}
