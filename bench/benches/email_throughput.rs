//! Email on MariaDB: messages accepted per second (checked, built into MIME, stored with
//! their delivery job and audit event in one transaction) beside a raw single-row
//! `INSERT` loop through the same driver at the same concurrency; then the worker's
//! send rate against moto (SES), pacing lifted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use mailer::model::SendEmail;
use mailer::testing::SesTestServer;
use mailer::transport::{DevMailbox, Mailer, SesMailer};
use mailer::{MailService, MailSettings, SEND_QUEUE, SendHandler};
use shared_db::testing::TestDb;
use shared_db::with_conn;
use shared_db::worker::{Worker, WorkerOptions};
use tokio_util::sync::CancellationToken;

const CONCURRENCY: usize = 16;
const SENDS: usize = 300;

fn secs() -> u64 {
    std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn message(i: u64) -> SendEmail {
    SendEmail {
        to: vec![format!("user{i}@example.org")],
        subject: Some(format!("Your receipt #{i}")),
        text: Some("Thank you for your order. ".repeat(20)),
        html: Some(format!("<p>{}</p>", "Thank you for your order. ".repeat(20))),
        ..SendEmail::default()
    }
}

fn service(db: &TestDb, mailer: Arc<dyn Mailer>, from: &str) -> Arc<MailService> {
    Arc::new(
        MailService::new(
            db.pool.clone(),
            Some(mailer),
            None,
            MailSettings {
                default_from: Some(from.into()),
                max_send_rate: Some(1_000_000.0),
                ..MailSettings::default()
            },
            Arc::new(tokio::sync::Notify::new()),
        )
        .unwrap(),
    )
}

/// Runs `op` from `CONCURRENCY` tasks for the bench duration; returns operations per second.
async fn drive<F, Fut>(op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY as u64)
        .map(|t| {
            let (op, done, stop) = (op.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = t * 1_000_000_000;
                while !AtomicBool::load(&stop, Ordering::Relaxed) {
                    op(i).await;
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs())).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    AtomicU64::load(&done, Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn accepted_rate(db: &TestDb) {
    let svc = service(db, Arc::new(DevMailbox), "Shop <shop@example.com>");
    let accepted = drive(move |i| {
        let svc = svc.clone();
        async move {
            svc.submit(message(i), None, "bench").await.unwrap();
        }
    })
    .await;

    let pool = db.pool.clone();
    {
        let mut conn = pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "CREATE TABLE bench_raw (id VARCHAR(36) PRIMARY KEY, body LONGBLOB NOT NULL)"
        )
        .execute(c)
        .await)
        .unwrap();
    }
    let body = vec![b'x'; 1500];
    let raw = drive(move |_| {
        let (pool, body) = (pool.clone(), body.clone());
        async move {
            let mut conn = pool.get().await.unwrap();
            with_conn!(&mut *conn, |c| diesel::sql_query(
                "INSERT INTO bench_raw (id, body) VALUES (?, ?)"
            )
            .bind::<diesel::sql_types::Text, _>(shared_db::new_id())
            .bind::<diesel::sql_types::Binary, _>(&body)
            .execute(c)
            .await)
            .unwrap();
        }
    })
    .await;
    println!(
        "email_throughput [{}]: accepted {accepted:.0} emails/s; raw single-row INSERT {raw:.0}/s; ratio {:.2} ({} tasks, {} s each)",
        db.backend(),
        accepted / raw.max(1.0),
        CONCURRENCY,
        secs()
    );
}

async fn send_rate(db: &TestDb, ses: &SesTestServer) {
    let sender = format!("bench-{}@example.com", uuid::Uuid::now_v7().simple());
    ses.verify(&sender).await;
    let svc = service(db, Arc::new(SesMailer::new(&ses.config())), &sender);
    for i in 0..SENDS as u64 {
        svc.submit(message(i), None, "bench").await.unwrap();
    }
    let worker = Worker::new(
        db.pool.clone(),
        WorkerOptions {
            concurrency: 8,
            poll_interval: Duration::from_millis(10),
            ..WorkerOptions::default()
        },
    )
    .register(SEND_QUEUE, SendHandler(svc.clone()));
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(worker.run(stop.clone()));
    loop {
        let mut conn = db.pool.get().await.unwrap();
        let left = shared_db::jobs::counts(&mut conn, SEND_QUEUE).await.unwrap();
        let open: i64 = left.iter().filter(|(s, _)| s != "failed").map(|(_, n)| n).sum();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    stop.cancel();
    running.await.unwrap();
    let sent = ses.sent_from(&sender).await.len();
    assert_eq!(sent, SENDS, "every message reached moto");
    println!(
        "email_throughput [{}]: worker sent {SENDS} emails to moto in {:.2} s: {:.0} emails/s (8 concurrent sends)",
        db.backend(),
        took.as_secs_f64(),
        SENDS as f64 / took.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let Some(db) = TestDb::mysql().await else {
        println!("email_throughput: skipped: no MariaDB at TEST_MYSQL_URL");
        return;
    };
    accepted_rate(&db).await;
    match SesTestServer::start().await {
        Some(ses) => send_rate(&TestDb::mysql().await.unwrap(), &ses).await,
        None => println!("email_throughput: worker rate skipped: no moto"),
    }
}
