//! The job queue and its worker.

use super::*;

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
