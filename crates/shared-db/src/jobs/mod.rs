//! The durable job queue (the outbox for email and Slack).
//!
//! A job is enqueued inside the caller's transaction, so it exists exactly when the change
//! that asked for it does. Workers claim due jobs with `SELECT ... FOR UPDATE SKIP LOCKED`
//! on MySQL (each replica takes different rows) and inside `BEGIN IMMEDIATE` on SQLite.
//! A claim is a lease: a worker that dies stops renewing it, and once `locked_until`
//! passes another worker runs the job again. A job that keeps failing ends `failed` with
//! its last error; nothing is dropped silently. Succeeded jobs are deleted.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::schema::jobs;
use crate::{DbConn, DbError, with_conn};

/// Waiting to run (possibly later, see `run_at`).
pub const QUEUED: &str = "queued";
/// Behind an unfinished job of the same ordering key: becomes `queued` when that one is
/// done, so claims never walk a long line of jobs that cannot run yet.
pub const WAITING: &str = "waiting";
/// Claimed by a worker until `locked_until`.
pub const RUNNING: &str = "running";
/// Gave up: see `last_error`.
pub const FAILED: &str = "failed";

/// Longest error text kept per job.
const MAX_ERROR_CHARS: usize = 4000;

/// A stored job.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = jobs, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub struct Job {
    /// UUIDv7.
    pub id: String,
    /// Which handler runs it.
    pub queue: String,
    /// JSON payload.
    pub payload: String,
    /// `queued`, `running` or `failed`.
    pub status: String,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts started so far (including the running one).
    pub attempts: i32,
    /// Attempts allowed before the job fails for good.
    pub max_attempts: i32,
    /// Not run before this time.
    #[serde(serialize_with = "crate::time::rfc3339_micros::serialize")]
    pub run_at: NaiveDateTime,
    /// The worker holding the lease.
    pub locked_by: Option<String>,
    /// When the lease ends.
    #[serde(serialize_with = "crate::time::rfc3339_micros::option::serialize")]
    pub locked_until: Option<NaiveDateTime>,
    /// The last failure.
    pub last_error: Option<String>,
    /// At most one unfinished job per (queue, key).
    pub dedup_key: Option<String>,
    /// When it was enqueued.
    #[serde(serialize_with = "crate::time::rfc3339_micros::serialize")]
    pub created_at: NaiveDateTime,
    /// Last change.
    #[serde(serialize_with = "crate::time::rfc3339_micros::serialize")]
    pub updated_at: NaiveDateTime,
    /// When it failed for good.
    #[serde(serialize_with = "crate::time::rfc3339_micros::option::serialize")]
    pub finished_at: Option<NaiveDateTime>,
    /// Jobs sharing this key run one at a time, in the order they were enqueued.
    pub ordering_key: Option<String>,
}

impl Job {
    /// Decodes the payload.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, DbError> {
        serde_json::from_str(&self.payload).map_err(|e| DbError::Corrupt(format!("job {} payload: {e}", self.id)))
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    queue: String,
    payload: String,
    priority: i32,
    delay: Duration,
    max_attempts: i32,
    dedup_key: Option<String>,
    ordering_key: Option<String>,
}

impl NewJob {
    /// A job for `queue` carrying `payload` as JSON; 10 attempts, no delay, priority 0.
    pub fn new(queue: &str, payload: &impl Serialize) -> Result<Self, DbError> {
        Ok(Self {
            queue: queue.to_owned(),
            payload: serde_json::to_string(payload).map_err(|e| DbError::Corrupt(format!("job payload: {e}")))?,
            priority: 0,
            delay: Duration::ZERO,
            max_attempts: 10,
            dedup_key: None,
            ordering_key: None,
        })
    }

    /// Higher priority jobs are claimed first.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Do not run before `delay` has passed.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Attempts before the job fails for good (at least 1).
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// While a job with this key is unfinished in the queue, enqueueing another returns it.
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }
}

impl NewJob {
    /// Jobs with the same ordering key run one at a time, oldest first: a later one
    /// waits while an earlier one is queued (even retrying) or running. A job that
    /// failed for good no longer holds the others back.
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }
}

/// What `enqueue` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job with this id.
    New(String),
    /// An unfinished job with the same dedup key already exists.
    Duplicate(String),
}

impl Enqueued {
    /// The job's id either way.
    pub fn id(&self) -> &str {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

fn add(t: NaiveDateTime, d: Duration) -> NaiveDateTime {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn clip(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

/// Enqueues a job; call it inside the transaction of the change that asks for it.
pub async fn enqueue(conn: &mut DbConn, job: NewJob) -> Result<Enqueued, DbError> {
    if let Some(key) = &job.dedup_key
        && let Some(id) = find_dedup(conn, &job.queue, key).await?
    {
        return Ok(Enqueued::Duplicate(id));
    }
    let now = crate::now();
    let status = match &job.ordering_key {
        Some(key) if has_unfinished(conn, key).await? => WAITING,
        _ => QUEUED,
    };
    let row = Job {
        id: crate::new_id(),
        queue: job.queue,
        payload: job.payload,
        status: status.to_owned(),
        priority: job.priority,
        attempts: 0,
        max_attempts: job.max_attempts,
        run_at: add(now, job.delay),
        locked_by: None,
        locked_until: None,
        last_error: None,
        dedup_key: job.dedup_key,
        created_at: now,
        updated_at: now,
        finished_at: None,
        ordering_key: job.ordering_key,
    };
    let inserted = with_conn!(&mut *conn, |c| diesel::insert_into(jobs::table)
        .values(&row)
        .execute(c)
        .await);
    match inserted.map_err(DbError::from) {
        Ok(_) => Ok(Enqueued::New(row.id)),
        Err(e) if e.is_unique_violation() => {
            // Lost a race with another enqueuer of the same key.
            let key = row.dedup_key.as_deref().unwrap_or_default();
            match find_dedup(conn, &row.queue, key).await? {
                Some(id) => Ok(Enqueued::Duplicate(id)),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Whether a job of ordering key `key` is queued, running or waiting.
async fn has_unfinished(conn: &mut DbConn, key: &str) -> Result<bool, DbError> {
    let found = with_conn!(conn, |c| jobs::table
        .filter(jobs::ordering_key.eq(key))
        .filter(jobs::status.eq_any([QUEUED, RUNNING, WAITING]))
        .select(jobs::id)
        .first::<String>(c)
        .await
        .optional())?;
    Ok(found.is_some())
}

/// Queues the next waiting job of `key` (called when a job of that key is done).
async fn promote_next(conn: &mut DbConn, key: &str) -> Result<(), DbError> {
    let next: Option<String> = with_conn!(&mut *conn, |c| jobs::table
        .filter(jobs::ordering_key.eq(key))
        .filter(jobs::status.eq(WAITING))
        .order(jobs::id.asc())
        .select(jobs::id)
        .first(c)
        .await
        .optional())?;
    if let Some(id) = next {
        with_conn!(conn, |c| diesel::update(
            jobs::table.filter(jobs::id.eq(&id)).filter(jobs::status.eq(WAITING))
        )
        .set((jobs::status.eq(QUEUED), jobs::updated_at.eq(crate::now())))
        .execute(c)
        .await)?;
    }
    Ok(())
}

/// Queues the first waiting job of every ordering key that has nothing queued or running
/// any more: the sweep for what `complete` and `record_failure` did not promote (an
/// enqueue racing a completion, a worker that died in between, an exhausted lease). The
/// worker runs it every few seconds, not per claim (it reads every waiting job).
pub async fn promote_waiting(conn: &mut DbConn) -> Result<usize, DbError> {
    let heads: Vec<(Option<String>, Option<String>)> = with_conn!(&mut *conn, |c| jobs::table
        .filter(jobs::status.eq(WAITING))
        .group_by(jobs::ordering_key)
        .select((jobs::ordering_key, diesel::dsl::min(jobs::id)))
        .load(c)
        .await)?;
    if heads.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = heads.iter().filter_map(|(k, _)| k.clone()).collect();
    let busy: Vec<Option<String>> = with_conn!(&mut *conn, |c| jobs::table
        .filter(jobs::ordering_key.eq_any(&keys))
        .filter(jobs::status.eq_any([QUEUED, RUNNING]))
        .select(jobs::ordering_key)
        .distinct()
        .load(c)
        .await)?;
    let free: Vec<String> = heads
        .into_iter()
        .filter(|(k, _)| !busy.contains(k))
        .filter_map(|(_, id)| id)
        .collect();
    if free.is_empty() {
        return Ok(0);
    }
    let n = with_conn!(conn, |c| diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(&free))
            .filter(jobs::status.eq(WAITING))
    )
    .set((jobs::status.eq(QUEUED), jobs::updated_at.eq(crate::now())))
    .execute(c)
    .await)?;
    Ok(n)
}

async fn find_dedup(conn: &mut DbConn, queue: &str, key: &str) -> Result<Option<String>, DbError> {
    let id = with_conn!(conn, |c| jobs::table
        .filter(jobs::queue.eq(queue))
        .filter(jobs::dedup_key.eq(key))
        .select(jobs::id)
        .first::<String>(c)
        .await
        .optional())?;
    Ok(id)
}

/// Claims up to `limit` due jobs from `queues` for `worker`, leasing them for `lease`.
///
/// Due means queued with `run_at` passed, or running with an expired lease (its worker
/// died). Each claim counts as an attempt. Jobs whose lease expired on their last allowed
/// attempt are failed first instead of being run again.
pub async fn claim(
    conn: &mut DbConn,
    queues: &[String],
    worker: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    if queues.is_empty() || limit <= 0 {
        return Ok(Vec::new());
    }
    fail_exhausted_leases(conn).await?;
    crate::retrying!(claim_once(conn, queues, worker, lease, limit).await)
}

async fn claim_once(
    conn: &mut DbConn,
    queues: &[String],
    worker: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    let queues = queues.to_vec();
    let worker = worker.to_owned();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let now = crate::now();
        let earlier = diesel::alias!(jobs as earlier);
        // Safety net for ordering: a job still waits while an earlier job of its key is
        // unfinished (two jobs enqueued at once can both start out queued).
        let blocked = diesel::dsl::exists(
            earlier
                .filter(earlier.field(jobs::ordering_key).eq(jobs::ordering_key))
                .filter(earlier.field(jobs::status).eq_any([QUEUED, RUNNING]))
                .filter(earlier.field(jobs::id).lt(jobs::id)),
        );
        // Running jobs whose lease expired (their worker died) go first; then queued
        // ones that are due, in claim order along the `jobs_due` index.
        let expired = jobs::table
            .filter(jobs::status.eq(RUNNING))
            .filter(jobs::locked_until.assume_not_null().lt(now))
            .filter(jobs::queue.eq_any(&queues))
            .filter(diesel::dsl::not(blocked.clone()))
            .order((jobs::locked_until.asc(), jobs::id.asc()))
            .limit(limit)
            .select(jobs::id);
        let mut ids: Vec<String> = match conn {
            DbConn::Mysql(c) => expired.for_update().skip_locked().load(c).await?,
            DbConn::Sqlite(c) => expired.load(c).await?,
        };
        let room = limit - i64::try_from(ids.len()).unwrap_or(limit);
        if room > 0 {
            let due = jobs::table
                .filter(jobs::status.eq(QUEUED))
                .filter(jobs::run_at.le(now))
                .filter(jobs::queue.eq_any(&queues))
                .filter(diesel::dsl::not(blocked))
                .order((jobs::priority.desc(), jobs::run_at.asc(), jobs::id.asc()))
                .limit(room)
                .select(jobs::id);
            let more: Vec<String> = match conn {
                DbConn::Mysql(c) => due.for_update().skip_locked().load(c).await?,
                DbConn::Sqlite(c) => due.load(c).await?,
            };
            ids.extend(more);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let until = add(now, lease);
        with_conn!(&mut *conn, |c| diesel::update(
            jobs::table.filter(jobs::id.eq_any(&ids))
        )
        .set((
            jobs::status.eq(RUNNING),
            jobs::locked_by.eq(&worker),
            jobs::locked_until.eq(until),
            jobs::attempts.eq(jobs::attempts + 1),
            jobs::updated_at.eq(now),
        ))
        .execute(c)
        .await)?;
        let claimed = with_conn!(conn, |c| jobs::table
            .filter(jobs::id.eq_any(&ids))
            .order((jobs::priority.desc(), jobs::run_at.asc(), jobs::id.asc()))
            .select(Job::as_select())
            .load(c)
            .await)?;
        Ok(claimed)
    })
    .await
}

/// Fails running jobs whose lease expired on their last allowed attempt. Looks first
/// without locking, so the common case (none) takes no row locks.
async fn fail_exhausted_leases(conn: &mut DbConn) -> Result<usize, DbError> {
    let now = crate::now();
    let exhausted = jobs::status
        .eq(RUNNING)
        .and(jobs::locked_until.assume_not_null().lt(now))
        .and(jobs::attempts.ge(jobs::max_attempts));
    let ids: Vec<String> = with_conn!(&mut *conn, |c| jobs::table
        .filter(exhausted)
        .select(jobs::id)
        .load(c)
        .await)?;
    if ids.is_empty() {
        return Ok(0);
    }
    let n = with_conn!(conn, |c| diesel::update(
        jobs::table.filter(jobs::id.eq_any(&ids)).filter(exhausted)
    )
    .set((
        jobs::status.eq(FAILED),
        jobs::last_error.eq("lease expired on the last attempt: the worker stopped without reporting"),
        jobs::locked_by.eq(None::<String>),
        jobs::locked_until.eq(None::<NaiveDateTime>),
        jobs::dedup_key.eq(None::<String>),
        jobs::finished_at.eq(Some(now)),
        jobs::updated_at.eq(now),
    ))
    .execute(c)
    .await)?;
    Ok(n)
}

mod inspect;
mod outcome;
pub use inspect::*;
pub use outcome::*;
