//! Runs queued jobs: claims them, calls the handler registered for their queue, renews
//! the lease while the handler runs, and records success, a retry (exponential backoff
//! with jitter, through `backon`) or a final failure.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::jobs::{self, AfterFailure, Job};
use crate::{DbError, DbPool};

/// Why a handler's attempt failed, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// A transient failure: retry after the worker's backoff.
    Retry(String),
    /// A transient failure with a known wait (for instance a `Retry-After`).
    RetryAfter(Duration, String),
    /// A permanent failure: do not retry.
    Fatal(String),
    /// Not run yet (for instance to pace a rate-limited API): run again after the
    /// delay without counting an attempt.
    Defer(Duration),
}

/// How one attempt of a job ended, as told to a [`JobObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The job is done.
    Succeeded,
    /// It failed and will be tried again.
    Retrying,
    /// It failed for good (a fatal error, or its last attempt).
    Failed,
    /// Put off without counting an attempt (pacing).
    Deferred,
    /// The lease was lost while it ran, or its outcome could not be recorded: another
    /// attempt will run once the lease expires.
    Abandoned,
}

impl AttemptOutcome {
    /// The label used in metrics: `succeeded`, `retrying`, `failed`, `deferred`,
    /// `abandoned`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Deferred => "deferred",
            Self::Abandoned => "abandoned",
        }
    }
}

/// One finished attempt, for a [`JobObserver`].
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The job's queue.
    pub queue: &'a str,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// How long the handler ran.
    pub ran_for: Duration,
    /// From the job's enqueueing to the end of this attempt (for a success: the
    /// delivery latency, retries and waits included).
    pub since_enqueued: Duration,
}

/// Told about every attempt a worker runs (metrics); must not block.
pub trait JobObserver: Send + Sync + 'static {
    /// Called once per attempt, after its outcome is recorded.
    fn attempt(&self, attempt: Attempt<'_>);
}

/// Handles the jobs of one queue.
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one attempt of `job`.
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>>;
}

/// Exponential backoff with jitter between attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// No delay exceeds this (before jitter).
    pub max: Duration,
    /// Multiplier per attempt.
    pub factor: f32,
    /// Add up to one more delay at random, so retries of many jobs spread out.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(15 * 60),
            factor: 2.0,
            jitter: true,
        }
    }
}

impl Backoff {
    /// The wait after the `attempt`-th failed attempt (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let mut builder = backon::ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.max)
            .with_factor(self.factor)
            .without_max_times();
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max)
    }
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Identifies this worker in `locked_by` (unique per process).
    pub worker_id: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How often to look for due jobs when idle.
    pub poll_interval: Duration,
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: Duration,
    /// Waits between attempts.
    pub backoff: Backoff,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            worker_id: format!("worker-{}", uuid::Uuid::now_v7().simple()),
            concurrency: 8,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }
}

/// Claims and runs jobs until shut down.
pub struct Worker {
    pool: DbPool,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    options: WorkerOptions,
    wake: Arc<Notify>,
    started: std::time::Instant,
    /// Milliseconds after `started` of the last sweep of waiting jobs (`u64::MAX`: none).
    last_sweep_ms: std::sync::atomic::AtomicU64,
    observer: Option<Arc<dyn JobObserver>>,
}

/// How often a worker queues waiting jobs whose turn came without a promotion.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

impl Worker {
    /// A worker with no handlers yet.
    pub fn new(pool: DbPool, options: WorkerOptions) -> Self {
        Self {
            pool,
            handlers: HashMap::new(),
            options,
            wake: Arc::new(Notify::new()),
            started: std::time::Instant::now(),
            last_sweep_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
            observer: None,
        }
    }

    /// Tells `observer` about every attempt.
    pub fn with_observer(mut self, observer: Arc<dyn JobObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs `queue`'s jobs with `handler`.
    pub fn register(mut self, queue: &str, handler: impl JobHandler) -> Self {
        self.handlers.insert(queue.to_owned(), Arc::new(handler));
        self
    }

    /// Wakes the worker at once (after an enqueue in this process) instead of at its
    /// next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Uses `wake` (shared with the services that enqueue) as the waker.
    pub fn with_waker(mut self, wake: Arc<Notify>) -> Self {
        self.wake = wake;
        self
    }

    /// Runs until `shutdown` is cancelled, then stops claiming and waits for the jobs in
    /// flight to finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let queues: Vec<String> = self.handlers.keys().cloned().collect();
        let shared = Arc::new(self);
        let mut tasks = JoinSet::new();
        tracing::info!(worker = %shared.options.worker_id, ?queues, "job worker started");
        while !shutdown.is_cancelled() {
            while let Some(done) = tasks.try_join_next() {
                log_join(done);
            }
            let free = shared.options.concurrency.saturating_sub(tasks.len());
            let claimed = if free > 0 {
                match shared.claim(&queues, free).await {
                    Ok(jobs) => jobs,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming jobs failed; will retry");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let got_work = !claimed.is_empty();
            for job in claimed {
                let shared = shared.clone();
                tasks.spawn(async move { shared.run_job(job).await });
            }
            if got_work && tasks.len() < shared.options.concurrency {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(shared.options.poll_interval) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => log_join(done),
            }
        }
        tracing::info!(in_flight = tasks.len(), "job worker stopping; finishing jobs in flight");
        while let Some(done) = tasks.join_next().await {
            log_join(done);
        }
    }

    /// Claims and runs due jobs until none is left; returns how many attempts ran.
    /// For tests and one-shot commands.
    pub async fn drain(&self) -> Result<usize, DbError> {
        let queues: Vec<String> = self.handlers.keys().cloned().collect();
        let mut ran = 0;
        loop {
            let claimed = self.claim(&queues, self.options.concurrency).await?;
            if claimed.is_empty() {
                return Ok(ran);
            }
            ran += claimed.len();
            futures_util::future::join_all(claimed.into_iter().map(|job| self.run_job(job))).await;
        }
    }

    async fn claim(&self, queues: &[String], limit: usize) -> Result<Vec<Job>, DbError> {
        let mut conn = self.pool.get().await?;
        if self.sweep_due() {
            jobs::promote_waiting(&mut conn).await?;
        }
        jobs::claim(
            &mut conn,
            queues,
            &self.options.worker_id,
            self.options.lease,
            i64::try_from(limit).unwrap_or(i64::MAX),
        )
        .await
    }

    /// True every `SWEEP_EVERY` (and on the first claim).
    fn sweep_due(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_sweep_ms.load(std::sync::atomic::Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= SWEEP_EVERY.as_millis() as u64;
        due && self
            .last_sweep_ms
            .compare_exchange(
                last,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    }

    async fn run_job(&self, job: Job) {
        let span = tracing::info_span!("job", id = %job.id, queue = %job.queue, attempt = job.attempts);
        self.attempt(job).instrument(span).await;
    }

    async fn attempt(&self, job: Job) {
        let Some(handler) = self.handlers.get(&job.queue).cloned() else {
            return;
        };
        let started = std::time::Instant::now();
        let result = {
            let heartbeat = self.heartbeat(&job.id);
            let run = AssertUnwindSafe(handler.handle(&job)).catch_unwind();
            tokio::pin!(heartbeat, run);
            tokio::select! {
                r = &mut run => Some(r),
                () = &mut heartbeat => {
                    tracing::warn!(job = %job.id, "lease lost while running; abandoning the attempt");
                    None
                }
            }
        };
        let ran_for = started.elapsed();
        let outcome = match result {
            None => AttemptOutcome::Abandoned,
            Some(result) => {
                let error = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some(JobError::Retry("the job handler panicked".into())),
                };
                match self.record(&job, error).await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        tracing::warn!(job = %job.id, error = %e, "could not record the job's outcome; its lease will expire and it will run again");
                        AttemptOutcome::Abandoned
                    }
                }
            }
        };
        if let Some(observer) = &self.observer {
            let since_enqueued = (crate::now() - job.created_at).to_std().unwrap_or_default();
            observer.attempt(Attempt {
                queue: &job.queue,
                outcome,
                ran_for,
                since_enqueued,
            });
        }
    }

    /// Renews the lease every third of its length; returns only if the lease is lost.
    async fn heartbeat(&self, id: &str) {
        let every = self.options.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let renewed = match self.pool.get().await {
                Ok(mut conn) => jobs::extend_lease(&mut conn, id, &self.options.worker_id, self.options.lease).await,
                Err(e) => Err(e),
            };
            match renewed {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(job = %id, error = %e, "lease renewal failed; will retry"),
            }
        }
    }

    async fn record(&self, job: &Job, outcome: Option<JobError>) -> Result<AttemptOutcome, DbError> {
        let mut conn = self.pool.get().await?;
        let worker = &self.options.worker_id;
        let Some(error) = outcome else {
            if !jobs::complete_job(&mut conn, job, worker).await? {
                tracing::warn!(job = %job.id, "finished after its lease was taken over");
            }
            return Ok(AttemptOutcome::Succeeded);
        };
        let attempt = u32::try_from(job.attempts).unwrap_or(1);
        let (message, retry_in) = match &error {
            JobError::Retry(m) => (m.as_str(), Some(self.options.backoff.delay(attempt))),
            JobError::RetryAfter(d, m) => (m.as_str(), Some(*d)),
            JobError::Fatal(m) => (m.as_str(), None),
            JobError::Defer(d) => {
                if !jobs::defer(&mut conn, job, worker, *d).await? {
                    tracing::warn!(job = %job.id, "deferred after its lease was taken over");
                    return Ok(AttemptOutcome::Abandoned);
                }
                return Ok(AttemptOutcome::Deferred);
            }
        };
        Ok(
            match jobs::record_failure(&mut conn, job, worker, message, retry_in).await? {
                AfterFailure::Retrying(d) => {
                    tracing::info!(job = %job.id, queue = %job.queue, attempt, retry_in_ms = d.as_millis() as u64, error = %message, "job attempt failed; retrying");
                    AttemptOutcome::Retrying
                }
                AfterFailure::Failed => {
                    tracing::error!(job = %job.id, queue = %job.queue, attempt, error = %message, "job failed");
                    AttemptOutcome::Failed
                }
                AfterFailure::LeaseLost => {
                    tracing::warn!(job = %job.id, "failed after its lease was taken over");
                    AttemptOutcome::Abandoned
                }
            },
        )
    }
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "job task ended abnormally");
    }
}
