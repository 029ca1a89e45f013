//! Slack messages per second through the durable queue to a fake Slack Web API
//! (wiremock), on SQLite and (when reachable) MariaDB: 1,000 messages over 50 channels,
//! 8 concurrent deliveries, pacing lifted so the queue itself is measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use shared_db::testing::TestDb;
use shared_db::worker::{Worker, WorkerOptions};
use slack_notify::layout::Level;
use slack_notify::model::PostMessage;
use slack_notify::transport::SlackApi;
use slack_notify::{POST_QUEUE, PostHandler, SlackService};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const MESSAGES: usize = 1000;
const CHANNELS: usize = 50;

async fn run(db: TestDb) {
    let server = MockServer::start().await;
    let ok = ResponseTemplate::new(200).set_body_json(json!({
        "ok": true, "channel": "C1", "ts": "1764339120.000100", "message": { "ts": "1764339120.000100" },
    }));
    Mock::given(method("POST")).respond_with(ok).mount(&server).await;
    let api = SlackApi::new("xoxb-bench", &format!("{}/api", server.uri())).unwrap();
    let wake = Arc::new(tokio::sync::Notify::new());
    let service = Arc::new(SlackService::new(
        db.pool.clone(),
        Some(Arc::new(api)),
        None,
        None,
        1_000_000,
        wake.clone(),
    ));
    let worker = Worker::new(
        db.pool.clone(),
        WorkerOptions {
            concurrency: 8,
            poll_interval: Duration::from_millis(10),
            ..WorkerOptions::default()
        },
    )
    .with_waker(wake)
    .register(POST_QUEUE, PostHandler(service.clone()));
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(worker.run(stop.clone()));
    for i in 0..MESSAGES {
        let msg = PostMessage {
            channel: Some(format!("#bench-{}", i % CHANNELS)),
            level: Level::Warning,
            title: format!("message {i}"),
            text: Some("load test".into()),
            fields: vec![],
            links: vec![],
            source: None,
            environment: None,
            thread_of: None,
            mention: None,
        };
        service.submit(msg, None, "bench").await.unwrap();
    }
    let accepted = started.elapsed();
    while server.received_requests().await.unwrap_or_default().len() < MESSAGES {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = started.elapsed();
    stop.cancel();
    running.await.unwrap();
    println!(
        "slack_throughput [{}]: {MESSAGES} messages, {CHANNELS} channels: accepted {:.0}/s, delivered end to end {:.0}/s ({:.2} s)",
        db.backend(),
        MESSAGES as f64 / accepted.as_secs_f64(),
        MESSAGES as f64 / delivered.as_secs_f64(),
        delivered.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    run(TestDb::sqlite().await).await;
    match TestDb::mysql().await {
        Some(db) => run(db).await,
        None => println!("slack_throughput [mysql]: skipped: no MariaDB at TEST_MYSQL_URL"),
    }
}
