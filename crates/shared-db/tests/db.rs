//! shared-db against real databases: SQLite always, MariaDB when reachable (required in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;
use shared_db::jobs::{self, AfterFailure, Enqueued, Job, NewJob};
use shared_db::testing::TestDb;
use shared_db::worker::{Backoff, JobError, JobHandler, Worker, WorkerOptions};
use shared_db::{Backend, DbConn, DbError, DbPool, PoolOptions, events, migrations, schema, with_conn};
use tokio_util::sync::CancellationToken;

fn count(n: &AtomicUsize) -> usize {
    AtomicUsize::load(n, Ordering::SeqCst)
}

async fn table_count(conn: &mut DbConn) -> i64 {
    with_conn!(conn, |c| schema::jobs::table.count().get_result::<i64>(c).await).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_run_up_down_and_up_again_on_both_backends() {
    let mut backends = vec![TestDb::sqlite_unmigrated().await];
    backends.extend(TestDb::mysql_unmigrated().await);
    for db in backends {
        let pending = migrations::pending(&db.url).await.unwrap();
        assert!(
            !pending.is_empty(),
            "{}: nothing pending on an empty database",
            db.backend()
        );
        let applied = migrations::run_pending(&db.url).await.unwrap();
        assert_eq!(applied, pending, "{}", db.backend());
        assert!(migrations::pending(&db.url).await.unwrap().is_empty());
        let mut conn = db.pool.get().await.unwrap();
        assert_eq!(table_count(&mut conn).await, 0);
        drop(conn);

        let reverted = migrations::revert_all(&db.url).await.unwrap();
        assert_eq!(reverted.len(), applied.len(), "{}", db.backend());
        let mut conn = db.pool.get().await.unwrap();
        let gone = with_conn!(&mut *conn, |c| schema::jobs::table.count().get_result::<i64>(c).await);
        assert!(
            gone.is_err(),
            "{}: jobs table should be gone after revert",
            db.backend()
        );
        drop(conn);

        assert_eq!(migrations::run_pending(&db.url).await.unwrap(), applied);
        assert!(
            migrations::run_pending(&db.url).await.unwrap().is_empty(),
            "second run applies nothing"
        );
    }
}

/// While another connection (a replica still migrating) holds the migration lock past
/// the wait, a replica refuses to migrate, with an error naming the lock and the way
/// out, instead of running the same DDL concurrently.
#[tokio::test(flavor = "multi_thread")]
async fn migrations_refuse_to_run_without_the_lock() {
    use diesel_async::SimpleAsyncConnection;
    let Some(db) = TestDb::mysql_unmigrated().await else {
        return;
    };
    let DbConn::Mysql(mut holder) = DbConn::connect(&db.url).await.unwrap() else {
        unreachable!("a MySQL url");
    };
    #[derive(QueryableByName)]
    struct Got {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        got: Option<i64>,
    }
    let got: Got = diesel::sql_query("SELECT CAST(GET_LOCK('event_bridge_migrations', 120) AS SIGNED) AS got")
        .get_result(&mut holder)
        .await
        .unwrap();
    assert_eq!(got.got, Some(1));
    let err = migrations::run_pending_waiting(&db.url, Duration::from_secs(1))
        .await
        .expect_err("migrated without the lock");
    let msg = err.to_string();
    assert!(msg.contains("event_bridge_migrations"), "{msg}");
    assert!(msg.contains("DB_MIGRATE_ON_START=false"), "{msg}");
    assert!(msg.contains("gateway migrate"), "{msg}");
    holder
        .batch_execute("DO RELEASE_LOCK('event_bridge_migrations')")
        .await
        .unwrap();
    // Nothing ran: everything is still pending.
    let pending = migrations::pending(&db.url).await.unwrap();
    assert!(!pending.is_empty(), "nothing ran");
    assert_eq!(migrations::run_pending(&db.url).await.unwrap(), pending);
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_commit_roll_back_and_nest() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let kept = conn
            .transaction::<_, DbError, _>(async |c| {
                let job = jobs::enqueue(c, NewJob::new("t", &1).unwrap()).await?;
                Ok(job.id().to_owned())
            })
            .await
            .unwrap();
        let failed: Result<(), DbError> = conn
            .transaction(async |c| {
                jobs::enqueue(c, NewJob::new("t", &2).unwrap()).await?;
                events::record(c, "thing.changed", "test", "thing:2", serde_json::json!({})).await?;
                Err(DbError::Corrupt("caller changed its mind".into()))
            })
            .await;
        assert!(failed.is_err());
        // A change that fails leaves no event: the event was in its transaction.
        let trail = events::for_subject(&mut conn, "thing:2").await.unwrap();
        assert!(trail.is_empty(), "{trail:?}");
        let nested = conn
            .transaction::<_, DbError, _>(async |c| {
                jobs::enqueue(c, NewJob::new("t", &3).unwrap()).await?;
                let inner: Result<(), DbError> = c
                    .transaction(async |c| {
                        jobs::enqueue(c, NewJob::new("t", &4).unwrap()).await?;
                        Err(DbError::Corrupt("inner".into()))
                    })
                    .await;
                assert!(inner.is_err());
                Ok(())
            })
            .await;
        nested.unwrap();
        let payloads: Vec<String> = with_conn!(&mut *conn, |c| schema::jobs::table
            .order(schema::jobs::id.asc())
            .select(schema::jobs::payload)
            .load(c)
            .await)
        .unwrap();
        assert_eq!(payloads, vec!["1", "3"], "{}", db.backend());
        assert!(jobs::get(&mut conn, &kept).await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_order_delay_and_dedup() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let low = jobs::enqueue(&mut conn, NewJob::new("mail", &"low").unwrap())
            .await
            .unwrap();
        let high = jobs::enqueue(&mut conn, NewJob::new("mail", &"high").unwrap().priority(5))
            .await
            .unwrap();
        let later = jobs::enqueue(
            &mut conn,
            NewJob::new("mail", &"later").unwrap().delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
        jobs::enqueue(&mut conn, NewJob::new("other", &"x").unwrap())
            .await
            .unwrap();

        let first = jobs::enqueue(&mut conn, NewJob::new("mail", &"d1").unwrap().dedup_key("k"))
            .await
            .unwrap();
        let second = jobs::enqueue(&mut conn, NewJob::new("mail", &"d2").unwrap().dedup_key("k"))
            .await
            .unwrap();
        assert!(matches!(first, Enqueued::New(_)));
        assert_eq!(second, Enqueued::Duplicate(first.id().to_owned()));
        let other_queue = jobs::enqueue(&mut conn, NewJob::new("other", &"d").unwrap().dedup_key("k"))
            .await
            .unwrap();
        assert!(matches!(other_queue, Enqueued::New(_)), "dedup keys are per queue");

        let claimed = jobs::claim(&mut conn, &["mail".into()], "w1", Duration::from_secs(30), 10)
            .await
            .unwrap();
        let ids: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![high.id(), low.id(), first.id()],
            "{}: priority, then age; delayed and other queues excluded",
            db.backend()
        );
        assert!(
            claimed
                .iter()
                .all(|j| j.status == jobs::RUNNING && j.attempts == 1 && j.locked_by.as_deref() == Some("w1"))
        );
        assert!(!claimed.iter().any(|j| j.id == later.id()));

        // Nothing more is due, and running jobs are not claimed twice.
        assert!(
            jobs::claim(&mut conn, &["mail".into()], "w2", Duration::from_secs(30), 10)
                .await
                .unwrap()
                .is_empty()
        );

        // After completion the key is free again.
        assert!(jobs::complete(&mut conn, first.id(), "w1").await.unwrap());
        assert!(
            jobs::get(&mut conn, first.id()).await.unwrap().is_none(),
            "succeeded jobs are deleted"
        );
        let again = jobs::enqueue(&mut conn, NewJob::new("mail", &"d3").unwrap().dedup_key("k"))
            .await
            .unwrap();
        assert!(matches!(again, Enqueued::New(_)));
        // Only the lease holder can complete.
        assert!(!jobs::complete(&mut conn, high.id(), "w2").await.unwrap());
        assert!(jobs::complete(&mut conn, high.id(), "w1").await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_retry_then_fail_with_the_last_error() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let id = jobs::enqueue(&mut conn, NewJob::new("q", &"p").unwrap().max_attempts(2))
            .await
            .unwrap();
        let queues = ["q".to_owned()];

        let job = jobs::claim(&mut conn, &queues, "w", Duration::from_secs(30), 1)
            .await
            .unwrap()
            .remove(0);
        let after = jobs::record_failure(&mut conn, &job, "w", "smtp 451", Some(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(after, AfterFailure::Retrying(Duration::ZERO));
        let stored = jobs::get(&mut conn, id.id()).await.unwrap().unwrap();
        assert_eq!(
            (stored.status.as_str(), stored.last_error.as_deref()),
            (jobs::QUEUED, Some("smtp 451"))
        );

        let job = jobs::claim(&mut conn, &queues, "w", Duration::from_secs(30), 1)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(job.attempts, 2);
        let after = jobs::record_failure(&mut conn, &job, "w", "smtp 451 again", Some(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(after, AfterFailure::Failed, "no attempts left");
        let stored = jobs::get(&mut conn, id.id()).await.unwrap().unwrap();
        assert_eq!(stored.status, jobs::FAILED);
        assert_eq!(stored.last_error.as_deref(), Some("smtp 451 again"));
        assert!(stored.finished_at.is_some());
        assert!(
            jobs::claim(&mut conn, &queues, "w", Duration::from_secs(30), 1)
                .await
                .unwrap()
                .is_empty()
        );

        // An operator can put it back.
        assert!(jobs::retry_failed(&mut conn, id.id()).await.unwrap());
        let job = jobs::claim(&mut conn, &queues, "w", Duration::from_secs(30), 1)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(job.attempts, 1);
        // A permanent failure does not retry even with attempts left.
        assert_eq!(
            jobs::record_failure(&mut conn, &job, "w", "bad address", None)
                .await
                .unwrap(),
            AfterFailure::Failed
        );
        // Long errors are clipped, not refused.
        assert!(jobs::retry_failed(&mut conn, id.id()).await.unwrap());
        let job = jobs::claim(&mut conn, &queues, "w", Duration::from_secs(30), 1)
            .await
            .unwrap()
            .remove(0);
        let long = "é".repeat(10_000);
        jobs::record_failure(&mut conn, &job, "w", &long, None).await.unwrap();
        let stored = jobs::get(&mut conn, id.id()).await.unwrap().unwrap();
        assert_eq!(stored.last_error.unwrap().chars().count(), 4000);
        assert_eq!(
            jobs::counts(&mut conn, "q").await.unwrap(),
            vec![(jobs::FAILED.to_owned(), 1)]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_is_run_again_and_fails_when_exhausted() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let queues = ["q".to_owned()];
        let id = jobs::enqueue(&mut conn, NewJob::new("q", &"p").unwrap().max_attempts(2))
            .await
            .unwrap();
        // Worker A claims with a short lease and "dies".
        let a = jobs::claim(&mut conn, &queues, "a", Duration::from_millis(1000), 1)
            .await
            .unwrap();
        assert_eq!(a.len(), 1);
        assert!(
            jobs::claim(&mut conn, &queues, "b", Duration::from_secs(30), 1)
                .await
                .unwrap()
                .is_empty(),
            "lease still held"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let b = jobs::claim(&mut conn, &queues, "b", Duration::from_millis(1000), 1)
            .await
            .unwrap();
        assert_eq!(
            b.len(),
            1,
            "{}: the job runs again after the lease expires",
            db.backend()
        );
        assert_eq!((b[0].id.as_str(), b[0].attempts), (id.id(), 2));
        // A's late report changes nothing.
        assert!(!jobs::complete(&mut conn, id.id(), "a").await.unwrap());
        assert_eq!(
            jobs::record_failure(&mut conn, &a[0], "a", "late", Some(Duration::ZERO))
                .await
                .unwrap(),
            AfterFailure::LeaseLost
        );
        // B renews its lease, then dies on the last attempt: the job fails, it is not lost.
        assert!(
            jobs::extend_lease(&mut conn, id.id(), "b", Duration::from_millis(1000))
                .await
                .unwrap()
        );
        assert!(
            !jobs::extend_lease(&mut conn, id.id(), "a", Duration::from_secs(30))
                .await
                .unwrap()
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(
            jobs::claim(&mut conn, &queues, "c", Duration::from_secs(30), 1)
                .await
                .unwrap()
                .is_empty()
        );
        let stored = jobs::get(&mut conn, id.id()).await.unwrap().unwrap();
        assert_eq!(stored.status, jobs::FAILED);
        assert!(stored.last_error.unwrap().contains("lease expired"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_claimers_never_share_a_job() {
    const JOBS: usize = 400;
    const CLAIMERS: usize = 8;
    for db in TestDb::each().await {
        {
            let mut conn = db.pool.get().await.unwrap();
            for i in 0..JOBS {
                jobs::enqueue(&mut conn, NewJob::new("c", &i).unwrap()).await.unwrap();
            }
        }
        let mut tasks = Vec::new();
        for w in 0..CLAIMERS {
            let pool = db.pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let mut conn = pool.get().await.unwrap();
                    let got = jobs::claim(&mut conn, &["c".into()], &format!("w{w}"), Duration::from_secs(60), 5)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    for job in got {
                        assert!(jobs::complete(&mut conn, &job.id, &format!("w{w}")).await.unwrap());
                        mine.push(job.id);
                    }
                }
            }));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut busy_workers = 0;
        for t in tasks {
            let mine = t.await.unwrap();
            busy_workers += usize::from(!mine.is_empty());
            for id in mine {
                *seen.entry(id).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), JOBS, "{}: every job ran", db.backend());
        assert!(
            seen.values().all(|&n| n == 1),
            "{}: a job was claimed twice",
            db.backend()
        );
        if db.backend() == Backend::Mysql {
            assert!(busy_workers > 1, "SKIP LOCKED lets several claimers work at once");
        }
        let mut conn = db.pool.get().await.unwrap();
        assert_eq!(table_count(&mut conn).await, 0);
    }
}

/// Fails `fail_times` times, then succeeds; counts attempts.
struct Flaky {
    fail_times: usize,
    calls: Arc<AtomicUsize>,
    error: JobError,
}

impl JobHandler for Flaky {
    fn handle<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_times {
                Err(self.error.clone())
            } else {
                Ok(())
            }
        })
    }
}

struct Panics;

impl JobHandler for Panics {
    fn handle<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move { panic!("handler bug") })
    }
}

fn fast_options(id: &str) -> WorkerOptions {
    WorkerOptions {
        worker_id: id.into(),
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(30),
        backoff: Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
            factor: 2.0,
            jitter: false,
        },
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_retries_fails_and_survives_a_panicking_handler() {
    for db in TestDb::each().await {
        let calls = Arc::new(AtomicUsize::new(0));
        let fatal_calls = Arc::new(AtomicUsize::new(0));
        let worker = Worker::new(db.pool.clone(), fast_options("w"))
            .register(
                "flaky",
                Flaky {
                    fail_times: 2,
                    calls: calls.clone(),
                    error: JobError::Retry("try again".into()),
                },
            )
            .register(
                "fatal",
                Flaky {
                    fail_times: 9,
                    calls: fatal_calls.clone(),
                    error: JobError::Fatal("never".into()),
                },
            )
            .register("panics", Panics);
        let (flaky, fatal, panics) = {
            let mut conn = db.pool.get().await.unwrap();
            (
                jobs::enqueue(&mut conn, NewJob::new("flaky", &()).unwrap())
                    .await
                    .unwrap(),
                jobs::enqueue(&mut conn, NewJob::new("fatal", &()).unwrap())
                    .await
                    .unwrap(),
                jobs::enqueue(&mut conn, NewJob::new("panics", &()).unwrap().max_attempts(2))
                    .await
                    .unwrap(),
            )
        };
        let ran = worker.drain().await.unwrap();
        assert_eq!(ran, 3 + 1 + 2, "{}", db.backend());
        assert_eq!(count(&calls), 3);
        assert_eq!(count(&fatal_calls), 1, "fatal errors are not retried");
        let mut conn = db.pool.get().await.unwrap();
        assert!(
            jobs::get(&mut conn, flaky.id()).await.unwrap().is_none(),
            "succeeded on the third attempt"
        );
        let fatal = jobs::get(&mut conn, fatal.id()).await.unwrap().unwrap();
        assert_eq!(
            (fatal.status.as_str(), fatal.last_error.as_deref()),
            (jobs::FAILED, Some("never"))
        );
        let panics = jobs::get(&mut conn, panics.id()).await.unwrap().unwrap();
        assert_eq!(panics.status, jobs::FAILED);
        assert_eq!(panics.attempts, 2);
        assert!(panics.last_error.unwrap().contains("panicked"));
    }
}

struct Slow {
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

impl JobHandler for Slow {
    fn handle<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            self.started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1000)).await;
            self.finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_jobs_in_flight_and_renews_leases() {
    let db = TestDb::sqlite().await;
    let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut options = fast_options("w");
    options.lease = Duration::from_millis(600); // shorter than the job: must be renewed
    let worker = Worker::new(db.pool.clone(), options).register(
        "slow",
        Slow {
            started: started.clone(),
            finished: finished.clone(),
        },
    );
    {
        let mut conn = db.pool.get().await.unwrap();
        for _ in 0..3 {
            jobs::enqueue(&mut conn, NewJob::new("slow", &()).unwrap())
                .await
                .unwrap();
        }
    }
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    while count(&started) < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(count(&finished), 3, "in-flight jobs finished before run() returned");
    let mut conn = db.pool.get().await.unwrap();
    assert_eq!(table_count(&mut conn).await, 0, "each ran once and was recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_appended_with_the_change_or_not_at_all() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let _: Result<(), DbError> = conn
            .transaction(async |c| {
                events::append(
                    c,
                    events::NewEvent {
                        event_type: "x.done",
                        actor: Some("cli"),
                        subject: Some("x:1"),
                        data: serde_json::json!({"n": 1}),
                    },
                )
                .await?;
                Err(DbError::Corrupt("abort".into()))
            })
            .await;
        let kept = events::append(
            &mut conn,
            events::NewEvent {
                event_type: "x.done",
                actor: None,
                subject: Some("x:1"),
                data: serde_json::json!({"n": 2}),
            },
        )
        .await
        .unwrap();
        let stored = events::for_subject(&mut conn, "x:1").await.unwrap();
        assert_eq!(stored, vec![kept], "{}", db.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_reported_as_unavailable() {
    let url = shared_db::DatabaseUrl::parse("mysql://root@127.0.0.1:9/nothing").unwrap();
    let pool = DbPool::new(
        url,
        PoolOptions {
            max_size: 1,
            connect_timeout: Duration::from_millis(500),
            acquire_timeout: Duration::from_millis(500),
        },
    )
    .unwrap();
    let err = pool.check().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(!err.to_string().contains("password"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_connections_get_their_pragmas() {
    let db = TestDb::sqlite().await;
    let mut conn = db.pool.get().await.unwrap();
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    #[derive(QueryableByName)]
    struct Fk {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        foreign_keys: i32,
    }
    let DbConn::Sqlite(c) = &mut *conn else {
        panic!("sqlite")
    };
    let mode: Mode = diesel::sql_query("PRAGMA journal_mode").get_result(c).await.unwrap();
    let fk: Fk = diesel::sql_query("PRAGMA foreign_keys").get_result(c).await.unwrap();
    assert_eq!((mode.journal_mode.as_str(), fk.foreign_keys), ("wal", 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_with_one_ordering_key_run_one_at_a_time_in_order() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let q = ["slack".to_owned()];
        let a1 = enqueue_ordered(&mut conn, "a1", "#a").await;
        let a2 = jobs::enqueue(
            &mut conn,
            NewJob::new("slack", &"a2").unwrap().ordering_key("#a").priority(9),
        )
        .await
        .unwrap();
        let b1 = enqueue_ordered(&mut conn, "b1", "#b").await;
        let free = jobs::enqueue(&mut conn, NewJob::new("slack", &"free").unwrap())
            .await
            .unwrap();

        let first = claim_as_w(&mut conn, &q).await;
        let mut ids: Vec<&str> = first.iter().map(|j| j.id.as_str()).collect();
        ids.sort();
        let mut expected = vec![a1.id(), b1.id(), free.id()];
        expected.sort();
        assert_eq!(ids, expected, "{}: a2 waits for a1 despite its priority", db.backend());

        // a1 is retried later: a2 still waits (order is kept through retries).
        let a1_job = first.iter().find(|j| j.id == a1.id()).unwrap();
        jobs::record_failure(&mut conn, a1_job, "w", "429", Some(Duration::from_millis(1000)))
            .await
            .unwrap();
        assert!(claim_as_w(&mut conn, &q).await.is_empty());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let again = claim_as_w(&mut conn, &q).await;
        assert_eq!(again.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec![a1.id()]);
        // Once a1 fails for good, a2 may run.
        jobs::record_failure(&mut conn, &again[0], "w", "channel_not_found", None)
            .await
            .unwrap();
        let next = claim_as_w(&mut conn, &q).await;
        assert_eq!(next.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec![a2.id()]);
    }
}

/// Jobs behind an unfinished job of their key are stored `waiting`, so a claim never
/// walks them (a long line on one Slack channel would otherwise be scanned on every
/// claim); each is queued when the one before it is done, and order holds even when two
/// were enqueued as queued at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_line_behind_one_key_waits_outside_the_claim_path() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let q = ["slack".to_owned()];
        let mut line = Vec::new();
        for i in 0..50 {
            let job = NewJob::new("slack", &i).unwrap().ordering_key("#busy");
            line.push(jobs::enqueue(&mut conn, job).await.unwrap().id().to_owned());
        }
        let counts = jobs::counts(&mut conn, "slack").await.unwrap();
        assert_eq!(
            counts,
            vec![("queued".to_owned(), 1), ("waiting".to_owned(), 49)],
            "{}",
            db.backend()
        );
        // One at a time, in order, each promoted when the previous one is done.
        for (n, expected) in line.iter().enumerate() {
            let got = claim_as_w(&mut conn, &q).await;
            assert_eq!(
                got.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
                vec![expected.as_str()],
                "{}: job {n}",
                db.backend()
            );
            if n % 2 == 0 {
                assert!(jobs::complete(&mut conn, &got[0].id, "w").await.unwrap());
            } else {
                jobs::record_failure(&mut conn, &got[0], "w", "permanent", None)
                    .await
                    .unwrap();
            }
        }
        assert!(claim_as_w(&mut conn, &q).await.is_empty());

        // Two jobs that both started out queued (as concurrent enqueues can): the later
        // one still waits for the earlier one.
        let first = enqueue_ordered(&mut conn, "x1", "#race").await;
        let second = enqueue_ordered(&mut conn, "x2", "#race").await;
        with_conn!(&mut *conn, |c| diesel::update(
            schema::jobs::table.filter(schema::jobs::id.eq(second.id()))
        )
        .set(schema::jobs::status.eq("queued"))
        .execute(c)
        .await)
        .unwrap();
        let got = claim_as_w(&mut conn, &q).await;
        assert_eq!(got.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec![first.id()]);
        assert!(jobs::complete(&mut conn, first.id(), "w").await.unwrap());
        let got = claim_as_w(&mut conn, &q).await;
        assert_eq!(got.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec![second.id()]);
        assert!(jobs::complete(&mut conn, second.id(), "w").await.unwrap());

        // A waiting job whose predecessor went away without promoting it (an enqueue that
        // raced a completion): the workers' periodic sweep queues it.
        let lead = enqueue_ordered(&mut conn, "l", "#orphan").await;
        let orphan = enqueue_ordered(&mut conn, "o", "#orphan").await;
        with_conn!(&mut *conn, |c| diesel::delete(
            schema::jobs::table.filter(schema::jobs::id.eq(lead.id()))
        )
        .execute(c)
        .await)
        .unwrap();
        assert!(claim_as_w(&mut conn, &q).await.is_empty());
        assert_eq!(jobs::promote_waiting(&mut conn).await.unwrap(), 1);
        let got = claim_as_w(&mut conn, &q).await;
        assert_eq!(got.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec![orphan.id()]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deferring_does_not_count_an_attempt() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let q = ["q".to_owned()];
        let id = jobs::enqueue(&mut conn, NewJob::new("q", &()).unwrap().max_attempts(1))
            .await
            .unwrap();
        for _ in 0..3 {
            let job = jobs::claim(&mut conn, &q, "w", Duration::from_secs(30), 1)
                .await
                .unwrap()
                .remove(0);
            assert_eq!(job.attempts, 1);
            assert!(jobs::defer(&mut conn, &job, "w", Duration::ZERO).await.unwrap());
        }
        let stored = jobs::get(&mut conn, id.id()).await.unwrap().unwrap();
        assert_eq!(
            (stored.status.as_str(), stored.attempts),
            (jobs::QUEUED, 0),
            "{}",
            db.backend()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_replay_conflict_and_expire() {
    use shared_db::idempotency::{self, Key, Owner, Seen};
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let h1 = idempotency::request_hash(b"{\"a\":1}");
        let h2 = idempotency::request_hash(b"{\"a\":2}");
        let (alice, bob, bridge) = (
            Owner::ApiKey("alice".into()),
            Owner::ApiKey("bob".into()),
            Owner::System("bridge"),
        );
        let key = |owner, hash| Key { owner, key: "k1", hash };
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h1)).await.unwrap(),
            Seen::New
        );
        idempotency::remember(&mut conn, "emails", key(&alice, &h1), "res-1")
            .await
            .unwrap();
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h1)).await.unwrap(),
            Seen::Replay("res-1".into())
        );
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h2)).await.unwrap(),
            Seen::Conflict
        );
        assert_eq!(
            idempotency::check(&mut conn, "slack", key(&alice, &h2)).await.unwrap(),
            Seen::New,
            "keys are per scope"
        );
        // Keys are per owner: another API key, or the bridge, neither replays nor conflicts.
        for other in [&bob, &bridge] {
            for h in [&h1, &h2] {
                assert_eq!(
                    idempotency::check(&mut conn, "emails", key(other, h)).await.unwrap(),
                    Seen::New,
                    "{other:?}"
                );
            }
        }
        idempotency::remember(&mut conn, "emails", key(&bob, &h2), "res-bob")
            .await
            .unwrap();
        idempotency::remember(&mut conn, "emails", key(&bridge, &h2), "res-bridge")
            .await
            .unwrap();
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&bob, &h2)).await.unwrap(),
            Seen::Replay("res-bob".into())
        );
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h1)).await.unwrap(),
            Seen::Replay("res-1".into())
        );
        let dup = idempotency::remember(&mut conn, "emails", key(&alice, &h1), "res-2")
            .await
            .unwrap_err();
        assert!(dup.is_unique_violation());
        // Older than 24 hours: forgotten.
        let old = shared_db::now() - chrono::Duration::hours(25);
        with_conn!(&mut *conn, |c| diesel::update(schema::idempotency_keys::table)
            .set(schema::idempotency_keys::created_at.eq(old))
            .execute(c)
            .await)
        .unwrap();
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h2)).await.unwrap(),
            Seen::New,
            "{}",
            db.backend()
        );
        assert!(
            idempotency::valid_key("order-123_abc") && !idempotency::valid_key("") && !idempotency::valid_key("a b")
        );
    }
}

/// Enqueues a Slack-like job with `payload` in the line of `key`.
async fn enqueue_ordered(conn: &mut shared_db::DbConn, payload: &str, key: &str) -> jobs::Enqueued {
    jobs::enqueue(conn, NewJob::new("slack", &payload).unwrap().ordering_key(key))
        .await
        .unwrap()
}

/// Up to 10 jobs of `queues`, claimed by worker `w` for 30 s.
async fn claim_as_w(conn: &mut shared_db::DbConn, queues: &[String]) -> Vec<jobs::Job> {
    jobs::claim(conn, queues, "w", Duration::from_secs(30), 10)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_hands_each_event_to_one_claimer() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        for n in 0..5 {
            events::record(&mut conn, "x.done", "cli", "x:1", serde_json::json!({ "n": n }))
                .await
                .unwrap();
        }
        assert!(events::any_undispatched(&mut conn).await.unwrap());
        let mut other = db.pool.get().await.unwrap();
        let (mine, theirs) = if db.backend() == Backend::Mysql {
            // Two claimers in open transactions at once: MySQL skips the rows the first holds.
            events::prefer_read_committed(&mut conn).await.unwrap();
            conn.transaction::<_, DbError, _>(async |c| {
                let mine = events::claim_undispatched(c, 3).await?;
                let theirs = other
                    .transaction::<_, DbError, _>(async |o| events::claim_undispatched(o, 10).await)
                    .await?;
                events::mark_dispatched(c, &mine.iter().map(|e| e.id.clone()).collect::<Vec<_>>()).await?;
                Ok((mine, theirs))
            })
            .await
            .unwrap()
        } else {
            // SQLite: one writer at a time; the second claims after the first committed.
            let mine = conn
                .transaction::<_, DbError, _>(async |c| {
                    let mine = events::claim_undispatched(c, 3).await?;
                    events::mark_dispatched(c, &mine.iter().map(|e| e.id.clone()).collect::<Vec<_>>()).await?;
                    Ok(mine)
                })
                .await
                .unwrap();
            let theirs = other
                .transaction::<_, DbError, _>(async |o| events::claim_undispatched(o, 10).await)
                .await
                .unwrap();
            (mine, theirs)
        };
        assert_eq!(mine.len(), 3, "{}", db.backend());
        assert_eq!(theirs.len(), 2, "{}: the rest, none twice", db.backend());
        assert!(mine.iter().all(|e| !theirs.contains(e)));
        assert!(mine.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        let rest: Vec<String> = theirs.iter().map(|e| e.id.clone()).collect();
        events::mark_dispatched(&mut other, &rest).await.unwrap();
        assert!(!events::any_undispatched(&mut conn).await.unwrap());
    }
}

/// The outbox migration on a database that already has events: from 15 s before the
/// old bridge's cursor on they wait for the bridge (however far behind it was), older
/// ones count as dispatched, and rows inserted without naming the column (an older
/// replica) wait too. Without a cursor, the last ten minutes wait. Reverting seeds the
/// cursor at the oldest waiting event, so the older bridge takes up the backlog.
#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_migration_offers_only_recent_events_again() {
    use diesel_async::SimpleAsyncConnection;
    /// A UUIDv7 of the time `t`, as the events table stores ids.
    fn id_at(t: chrono::NaiveDateTime) -> String {
        let t = t.and_utc();
        uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            t.timestamp() as u64,
            t.timestamp_subsec_nanos(),
        ))
        .to_string()
    }
    #[derive(QueryableByName)]
    struct State {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    for db in TestDb::each().await {
        let (down, up) = match db.backend() {
            Backend::Mysql => (
                include_str!("../../../migrations/mysql/2026-12-02-080000_event_outbox/down.sql"),
                include_str!("../../../migrations/mysql/2026-12-02-080000_event_outbox/up.sql"),
            ),
            Backend::Sqlite => (
                include_str!("../../../migrations/sqlite/2026-12-02-080000_event_outbox/down.sql"),
                include_str!("../../../migrations/sqlite/2026-12-02-080000_event_outbox/up.sql"),
            ),
        };
        let mut conn = db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| c.batch_execute(down).await).unwrap();
        let now = shared_db::now();
        // The old bridge stopped two hours ago (its cursor), with the fleet down since.
        let cursor = now - chrono::Duration::hours(2);
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "INSERT INTO bridge_state (name, value) VALUES ('events_cursor', ?)"
        )
        .bind::<diesel::sql_types::Text, _>(cursor.and_utc().to_rfc3339())
        .execute(c)
        .await)
        .unwrap();
        let mut ids = HashMap::new();
        let mut times = HashMap::new();
        for (name, at) in [
            ("before-the-cursor", cursor - chrono::Duration::minutes(1)),
            ("in-the-overlap", cursor - chrono::Duration::seconds(10)),
            ("an-hour-ago", now - chrono::Duration::hours(1)),
            ("eleven-minutes-ago", now - chrono::Duration::minutes(11)),
            ("nine-minutes-ago", now - chrono::Duration::minutes(9)),
        ] {
            let id = id_at(at);
            with_conn!(&mut *conn, |c| diesel::sql_query(
                "INSERT INTO events (id, occurred_at, event_type, data) VALUES (?, ?, 'x.done', '{}')"
            )
            .bind::<diesel::sql_types::Text, _>(&id)
            .bind::<diesel::sql_types::Timestamp, _>(at)
            .execute(c)
            .await)
            .unwrap();
            ids.insert(id, name);
            times.insert(name, at);
        }
        with_conn!(&mut *conn, |c| c.batch_execute(up).await).unwrap();
        let older = shared_db::new_id();
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "INSERT INTO events (id, occurred_at, event_type, data) VALUES (?, ?, 'x.done', '{}')"
        )
        .bind::<diesel::sql_types::Text, _>(&older)
        .bind::<diesel::sql_types::Timestamp, _>(now)
        .execute(c)
        .await)
        .unwrap();
        ids.insert(older, "written-by-an-older-replica");
        let waiting = async |conn: &mut DbConn| -> Vec<&str> {
            conn.transaction::<_, DbError, _>(async |c| Ok(events::claim_undispatched(c, 10).await?))
                .await
                .unwrap()
                .into_iter()
                .map(|e| ids[&e.id])
                .collect()
        };
        assert_eq!(
            waiting(&mut *conn).await,
            [
                "in-the-overlap",
                "an-hour-ago",
                "eleven-minutes-ago",
                "nine-minutes-ago",
                "written-by-an-older-replica"
            ],
            "{}: everything from 15 s before the old cursor on",
            db.backend()
        );

        // Reverting: the older bridge's cursor starts at the oldest waiting event (at
        // most a second before it; SQLite keeps whole seconds).
        with_conn!(&mut *conn, |c| c.batch_execute(down).await).unwrap();
        let state: Vec<State> = with_conn!(&mut *conn, |c| diesel::sql_query(
            "SELECT value FROM bridge_state WHERE name = 'events_cursor'"
        )
        .load(c)
        .await)
        .unwrap();
        assert_eq!(state.len(), 1, "{}: the down migration seeds the cursor", db.backend());
        let seeded = chrono::DateTime::parse_from_rfc3339(&state[0].value)
            .unwrap_or_else(|e| panic!("{}: {:?}: {e}", db.backend(), state[0].value))
            .naive_utc();
        let oldest = times["in-the-overlap"];
        assert!(
            seeded <= oldest && oldest - seeded < chrono::Duration::seconds(1),
            "{}: cursor {seeded} for the oldest waiting event at {oldest}",
            db.backend()
        );

        // No cursor (the bridge never ran): only the last ten minutes wait.
        with_conn!(&mut *conn, |c| c.batch_execute("DELETE FROM bridge_state").await).unwrap();
        with_conn!(&mut *conn, |c| c.batch_execute(up).await).unwrap();
        assert_eq!(
            waiting(&mut *conn).await,
            ["nine-minutes-ago", "written-by-an-older-replica"],
            "{}: without a cursor, the last ten minutes",
            db.backend()
        );
    }
}

/// The owner migration on a database with keys: expired keys (older than 24 h, never
/// purged before) are dropped, live ones go to the creator of the resource they name,
/// one scope at a time, and the rest to `legacy`.
#[tokio::test(flavor = "multi_thread")]
async fn the_idempotency_owner_migration_drops_expired_keys_and_backfills_owners() {
    use diesel_async::SimpleAsyncConnection;
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        owner: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        scope: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        idem_key: String,
    }
    for db in TestDb::each().await {
        let (down, up) = match db.backend() {
            Backend::Mysql => (
                include_str!("../../../migrations/mysql/2026-12-02-000008_idempotency_owner/down.sql"),
                include_str!("../../../migrations/mysql/2026-12-02-000008_idempotency_owner/up.sql"),
            ),
            Backend::Sqlite => (
                include_str!("../../../migrations/sqlite/2026-12-02-000008_idempotency_owner/down.sql"),
                include_str!("../../../migrations/sqlite/2026-12-02-000008_idempotency_owner/up.sql"),
            ),
        };
        let mut conn = db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| c.batch_execute(down).await).unwrap();
        let at = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        let now = at(shared_db::now());
        let expired = at(shared_db::now() - chrono::Duration::hours(25));
        let fixture = format!(
            "INSERT INTO email_messages (id, batch_id, from_addr, subject, status, summary, raw_mime, size, created_by, created_at, updated_at) VALUES
                ('m1', 'b1', 'a@example.com', 's', 'sent', '{{}}', '', 0, 'api_key:abc', '{now}', '{now}'),
                ('m2', 'b2', 'a@example.com', 's', 'sent', '{{}}', '', 0, 'api_key:def', '{now}', '{now}'),
                ('m3', 'b2', 'a@example.com', 's', 'sent', '{{}}', '', 0, 'api_key:def', '{now}', '{now}');
             INSERT INTO slack_messages (id, channel, level, title, request, status, created_by, created_at, updated_at) VALUES
                ('s1', '#ops', 'info', 't', '{{}}', 'posted', 'bridge:rule-1', '{now}', '{now}');
             INSERT INTO idempotency_keys (scope, idem_key, request_hash, resource_id, created_at) VALUES
                ('emails', 'k1', 'h', 'm1', '{now}'),
                ('emails.batch', 'k2', 'h', 'b2', '{now}'),
                ('slack.messages', 'k3', 'h', 's1', '{now}'),
                ('sns', 'k4', 'h', 'x', '{now}'),
                ('emails', 'k5', 'h', 'unknown', '{now}'),
                ('emails', 'k6-expired', 'h', 'm1', '{expired}');"
        );
        with_conn!(&mut *conn, |c| c.batch_execute(&fixture).await).unwrap();
        with_conn!(&mut *conn, |c| c.batch_execute(up).await).unwrap();
        let rows: Vec<Row> = with_conn!(&mut *conn, |c| diesel::sql_query(
            "SELECT owner, scope, idem_key FROM idempotency_keys ORDER BY idem_key"
        )
        .load(c)
        .await)
        .unwrap();
        let row = |owner: &str, scope: &str, idem_key: &str| Row {
            owner: owner.into(),
            scope: scope.into(),
            idem_key: idem_key.into(),
        };
        assert_eq!(
            rows,
            [
                row("key:abc", "emails", "k1"),
                row("key:def", "emails.batch", "k2"),
                row("system:bridge", "slack.messages", "k3"),
                row("system:sns", "sns", "k4"),
                row("legacy", "emails", "k5"),
            ],
            "{}",
            db.backend()
        );
    }
}

/// Expired idempotency keys are purged in bulk (most are never looked up again, which
/// was the only time they were deleted); live ones stay.
#[tokio::test(flavor = "multi_thread")]
async fn expired_idempotency_keys_are_purged() {
    use shared_db::idempotency::{self, Key, Owner};
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let owner = Owner::ApiKey("k".into());
        let key = |k: &'static str| Key {
            owner: &owner,
            key: k,
            hash: "h",
        };
        idempotency::remember(&mut conn, "emails", key("live"), "r1")
            .await
            .unwrap();
        for (k, hours) in [("expired-1", 25), ("expired-2", 48)] {
            with_conn!(&mut *conn, |c| diesel::sql_query(
                "INSERT INTO idempotency_keys (owner, scope, idem_key, request_hash, resource_id, created_at) VALUES ('key:k', 'emails', ?, 'h', 'r', ?)"
            )
            .bind::<diesel::sql_types::Text, _>(k)
            .bind::<diesel::sql_types::Timestamp, _>(shared_db::now() - chrono::Duration::hours(hours))
            .execute(c)
            .await)
            .unwrap();
        }
        assert_eq!(
            idempotency::purge_expired(&mut conn).await.unwrap(),
            2,
            "{}",
            db.backend()
        );
        let left: Vec<String> = with_conn!(&mut *conn, |c| schema::idempotency_keys::table
            .select(schema::idempotency_keys::idem_key)
            .load(c)
            .await)
        .unwrap();
        assert_eq!(left, ["live"], "{}", db.backend());
        assert_eq!(idempotency::purge_expired(&mut conn).await.unwrap(), 0);
    }
}
