//! Upload and download throughput of one large object through the gateway (HTTP, S3
//! backend) beside the same transfer straight to the same S3 server through aws-sdk-s3
//! (our S3 store, 8 MiB multipart parts), and the process's peak RSS above idle during
//! the gateway transfers. Goals: the gateway at 70% or more of direct; under 64 MiB above
//! idle. `BENCH_BLOB_MIB` (default 1024) sets the size. The S3 server (s3s-fs) and the
//! client run in this process too, so the RSS figure is an upper bound for the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use blob_store::testing::S3TestServer;
use blob_store::{BlobStore, ObjectKey, PutOptions, S3Store};
use bytes::Bytes;
use futures_util::StreamExt;
use gateway::app::Application;
use gateway::config::Config;

const CHUNK: usize = 256 * 1024;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Samples RSS every 20 ms until stopped; returns the peak.
fn watch_rss() -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut peak = 0;
        while !s.load(Ordering::Relaxed) {
            peak = peak.max(rss_bytes());
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    (stop, handle)
}

fn body(total: usize) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunk = Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    futures_util::stream::iter((0..total / CHUNK).map(move |_| Ok(chunk.clone())))
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let mib: usize = std::env::var("BENCH_BLOB_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let total = mib * 1024 * 1024;
    let s3 = S3TestServer::start().await;

    // Straight to S3 through aws-sdk-s3.
    let direct = S3Store::new(&s3.config(8 * 1024 * 1024));
    let key = ObjectKey::parse("direct/big.bin").unwrap();
    let options = PutOptions {
        content_type: "application/octet-stream".into(),
        max_size: u64::MAX,
        expected_md5: None,
        expected_sha256: None,
        if_none_match: false,
        if_match: None,
    };
    let started = Instant::now();
    direct.put(&key, body(total).boxed(), options).await.unwrap();
    let direct_up = started.elapsed();
    let started = Instant::now();
    let mut got = 0;
    let mut stream = direct.get(&key, None).await.unwrap().body;
    while let Some(c) = stream.next().await {
        got += c.unwrap().len();
    }
    assert_eq!(got, total);
    let direct_down = started.elapsed();
    direct.delete(&key).await.unwrap();

    // Through the gateway.
    let data = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("APP_HOST", "127.0.0.1".into()),
        ("APP_PORT", "0".into()),
        ("DATA_DIR", data.path().to_string_lossy().into_owned()),
        ("LOG_LEVEL", "warn".into()),
        ("S3_BUCKET", blob_store::testing::BUCKET.into()),
        ("AWS_ENDPOINT_URL_S3", s3.endpoint.clone()),
        ("S3_FORCE_PATH_STYLE", "true".into()),
        ("AWS_ACCESS_KEY_ID", blob_store::testing::ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", blob_store::testing::SECRET_KEY.into()),
        ("BLOB_NAMESPACES", r#"[{"name":"ai","max_size":107374182400}]"#.into()),
    ]);
    let app = Application::build(Config::from_lookup(|k| vars.get(k).cloned()).unwrap())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    let mut conn = state.pool.get().await.unwrap();
    let admin = state
        .api_keys
        .create(&mut conn, "bench", &["*".into()], None, None)
        .await
        .unwrap();
    drop(conn);
    let token = secrecy::ExposeSecret::expose_secret(&admin.secret).to_owned();
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_bytes();

    let (stop, peak) = watch_rss();
    let started = Instant::now();
    let res = client
        .put(format!("{base}/api/v1/blobs/ai/gateway/big.bin"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(body(total)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
    let gateway_up = started.elapsed();
    let started = Instant::now();
    let res = client
        .get(format!("{base}/api/v1/blobs/ai/gateway/big.bin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let received = AtomicU64::new(0);
    let mut stream = res.bytes_stream();
    while let Some(c) = stream.next().await {
        received.fetch_add(c.unwrap().len() as u64, Ordering::Relaxed);
    }
    assert_eq!(received.load(Ordering::Relaxed), total as u64);
    let gateway_down = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();

    let (du, dd) = (mib_per_s(total, direct_up), mib_per_s(total, direct_down));
    let (gu, gd) = (mib_per_s(total, gateway_up), mib_per_s(total, gateway_down));
    println!("blob_throughput: {mib} MiB object, S3 = s3s-fs on local disk, 2 cores shared by client, gateway and S3");
    println!(
        "  upload:   direct {du:.0} MiB/s, gateway {gu:.0} MiB/s, ratio {:.2} (goal >= 0.70)",
        gu / du
    );
    println!(
        "  download: direct {dd:.0} MiB/s, gateway {gd:.0} MiB/s, ratio {:.2} (goal >= 0.70)",
        gd / dd
    );
    println!(
        "  process RSS: idle {:.1} MiB, peak {:.1} MiB, above idle {:.1} MiB (goal < 64 MiB; includes client and S3 server)",
        idle as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        peak.saturating_sub(idle) as f64 / 1048576.0
    );
}
