//! Looking at the queue: one job, counts and states for metrics, a failed job's retry.

use super::*;

/// One job by id (succeeded jobs are gone).
pub async fn get(conn: &mut DbConn, id: &str) -> Result<Option<Job>, DbError> {
    let job = with_conn!(conn, |c| jobs::table
        .find(id)
        .select(Job::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(job)
}

/// Puts a failed job back in the queue with a fresh set of attempts.
pub async fn retry_failed(conn: &mut DbConn, id: &str) -> Result<bool, DbError> {
    let now = crate::now();
    let n = with_conn!(conn, |c| diesel::update(
        jobs::table.filter(jobs::id.eq(id)).filter(jobs::status.eq(FAILED))
    )
    .set((
        jobs::status.eq(QUEUED),
        jobs::attempts.eq(0),
        jobs::run_at.eq(now),
        jobs::finished_at.eq(None::<NaiveDateTime>),
        jobs::updated_at.eq(now),
    ))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// Number of jobs per status in `queue`.
pub async fn counts(conn: &mut DbConn, queue: &str) -> Result<Vec<(String, i64)>, DbError> {
    let rows = with_conn!(conn, |c| jobs::table
        .filter(jobs::queue.eq(queue))
        .group_by(jobs::status)
        .select((jobs::status, diesel::dsl::count_star()))
        .order(jobs::status.asc())
        .load::<(String, i64)>(c)
        .await)?;
    Ok(rows)
}

/// The jobs of one queue in one state: how many, and since when the oldest has been in
/// the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueState {
    /// The queue.
    pub queue: String,
    /// `queued`, `waiting`, `running` or `failed` (finished jobs are deleted).
    pub status: String,
    /// How many.
    pub count: i64,
    /// When the oldest of them was enqueued.
    pub oldest: chrono::NaiveDateTime,
}

/// Every queue's jobs by state, for metrics: one grouped query over the unfinished and
/// failed jobs (finished ones are deleted, so the table holds only these).
pub async fn queue_states(conn: &mut DbConn) -> Result<Vec<QueueState>, DbError> {
    use diesel::dsl::{count_star, min};
    let rows = with_conn!(conn, |c| jobs::table
        .group_by((jobs::queue, jobs::status))
        .select((jobs::queue, jobs::status, count_star(), min(jobs::created_at)))
        .order((jobs::queue.asc(), jobs::status.asc()))
        .load::<(String, String, i64, Option<chrono::NaiveDateTime>)>(c)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|(queue, status, count, oldest)| QueueState {
            queue,
            status,
            count,
            oldest: oldest.unwrap_or_else(crate::now),
        })
        .collect())
}
