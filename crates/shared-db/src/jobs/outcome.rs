//! What a worker records after running a job: success, a failed attempt, a deferral,
//! a renewed lease.

use super::*;

/// Records success: the job is deleted. False when `worker` no longer held the lease
/// (another worker took the job over after the lease expired). The next waiting job of
/// its ordering key, if any, is queued.
pub async fn complete(conn: &mut DbConn, id: &str, worker: &str) -> Result<bool, DbError> {
    let key: Option<Option<String>> = with_conn!(&mut *conn, |c| jobs::table
        .find(id)
        .select(jobs::ordering_key)
        .first(c)
        .await
        .optional())?;
    finish(conn, id, key.flatten().as_deref(), worker).await
}

/// [`complete`] for a job the caller holds (the worker): no look-up of its ordering key.
pub async fn complete_job(conn: &mut DbConn, job: &Job, worker: &str) -> Result<bool, DbError> {
    finish(conn, &job.id, job.ordering_key.as_deref(), worker).await
}

async fn finish(conn: &mut DbConn, id: &str, key: Option<&str>, worker: &str) -> Result<bool, DbError> {
    let done = crate::retrying!(complete_once(conn, id, worker).await)?;
    if done && let Some(key) = key {
        crate::retrying!(promote_next(conn, key).await)?;
    }
    Ok(done)
}

async fn complete_once(conn: &mut DbConn, id: &str, worker: &str) -> Result<bool, DbError> {
    let n = with_conn!(conn, |c| diesel::delete(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq(RUNNING))
            .filter(jobs::locked_by.eq(worker))
    )
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// What happened to a job after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Queued again to run after the given delay.
    Retrying(Duration),
    /// No attempts left, or the failure was permanent: now `failed`.
    Failed,
    /// The worker had lost the lease; nothing was changed.
    LeaseLost,
}

/// Records a failed attempt: the job runs again after `retry_in` if attempts remain and
/// `retry_in` is given, otherwise it ends `failed` with `error`.
pub async fn record_failure(
    conn: &mut DbConn,
    job: &Job,
    worker: &str,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<AfterFailure, DbError> {
    let outcome = crate::retrying!(record_failure_once(conn, job, worker, error, retry_in).await)?;
    if outcome == AfterFailure::Failed
        && let Some(key) = &job.ordering_key
    {
        crate::retrying!(promote_next(conn, key).await)?;
    }
    Ok(outcome)
}

async fn record_failure_once(
    conn: &mut DbConn,
    job: &Job,
    worker: &str,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<AfterFailure, DbError> {
    let now = crate::now();
    let owned = jobs::table
        .filter(jobs::id.eq(&job.id))
        .filter(jobs::status.eq(RUNNING))
        .filter(jobs::locked_by.eq(worker));
    let error = clip(error);
    let (n, outcome) = match retry_in {
        Some(delay) if job.attempts < job.max_attempts => {
            let n = with_conn!(conn, |c| diesel::update(owned)
                .set((
                    jobs::status.eq(QUEUED),
                    jobs::run_at.eq(add(now, delay)),
                    jobs::last_error.eq(&error),
                    jobs::locked_by.eq(None::<String>),
                    jobs::locked_until.eq(None::<NaiveDateTime>),
                    jobs::updated_at.eq(now),
                ))
                .execute(c)
                .await)?;
            (n, AfterFailure::Retrying(delay))
        }
        _ => {
            let n = with_conn!(conn, |c| diesel::update(owned)
                .set((
                    jobs::status.eq(FAILED),
                    jobs::last_error.eq(&error),
                    jobs::locked_by.eq(None::<String>),
                    jobs::locked_until.eq(None::<NaiveDateTime>),
                    jobs::dedup_key.eq(None::<String>),
                    jobs::finished_at.eq(Some(now)),
                    jobs::updated_at.eq(now),
                ))
                .execute(c)
                .await)?;
            (n, AfterFailure::Failed)
        }
    };
    Ok(if n == 1 { outcome } else { AfterFailure::LeaseLost })
}

/// Puts a running job back to run after `delay` without counting the attempt (the
/// handler chose not to run it yet, for instance to pace calls to a rate-limited API).
pub async fn defer(conn: &mut DbConn, job: &Job, worker: &str, delay: Duration) -> Result<bool, DbError> {
    crate::retrying!(defer_once(conn, job, worker, delay).await)
}

async fn defer_once(conn: &mut DbConn, job: &Job, worker: &str, delay: Duration) -> Result<bool, DbError> {
    let now = crate::now();
    let n = with_conn!(conn, |c| diesel::update(
        jobs::table
            .filter(jobs::id.eq(&job.id))
            .filter(jobs::status.eq(RUNNING))
            .filter(jobs::locked_by.eq(worker))
    )
    .set((
        jobs::status.eq(QUEUED),
        jobs::run_at.eq(add(now, delay)),
        jobs::attempts.eq(jobs::attempts - 1),
        jobs::locked_by.eq(None::<String>),
        jobs::locked_until.eq(None::<NaiveDateTime>),
        jobs::updated_at.eq(now),
    ))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// Extends a running job's lease; false when `worker` no longer holds it.
pub async fn extend_lease(conn: &mut DbConn, id: &str, worker: &str, lease: Duration) -> Result<bool, DbError> {
    crate::retrying!(extend_lease_once(conn, id, worker, lease).await)
}

async fn extend_lease_once(conn: &mut DbConn, id: &str, worker: &str, lease: Duration) -> Result<bool, DbError> {
    let now = crate::now();
    let n = with_conn!(conn, |c| diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq(RUNNING))
            .filter(jobs::locked_by.eq(worker))
    )
    .set((jobs::locked_until.eq(add(now, lease)), jobs::updated_at.eq(now)))
    .execute(c)
    .await)?;
    Ok(n == 1)
}
