//! Pruning in small batches: each batch is its own short statement, so no long lock is
//! held, and replicas pruning at the same time only find less to remove.

use std::future::Future;
use std::time::Duration;

use crate::{DbConn, DbError, DbPool};

/// Rows removed per statement.
pub const BATCH: i64 = 500;

/// Runs `one_batch` (which removes at most [`BATCH`] rows and says how many) on fresh
/// pooled connections until a batch comes back short; returns the total removed.
pub async fn in_batches<F>(pool: &DbPool, mut one_batch: F) -> Result<u64, DbError>
where
    F: for<'c> FnMut(&'c mut DbConn) -> std::pin::Pin<Box<dyn Future<Output = Result<u64, DbError>> + Send + 'c>>,
{
    let mut total = 0;
    loop {
        let n = {
            let mut conn = pool.get().await?;
            one_batch(&mut conn).await?
        };
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
        // Let other writers in between batches.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One batch of a pruning, its first half: the ids (text) of at most `batch` rows of
/// `table` whose `time` column is before `before` and that pass every further filter,
/// oldest first. The caller removes them (rechecking what may have changed meanwhile) and
/// says how many it removed, for [`in_batches`].
///
/// `prunable_ids!(conn, slack_messages, id, updated_at, before, batch, slack_messages::status.ne(queued))?`
/// needs `diesel::prelude::*` and `diesel_async::RunQueryDsl` in scope, as every query does.
#[macro_export]
macro_rules! prunable_ids {
    ($conn:expr, $table:ident, $id:ident, $time:ident, $before:expr, $batch:expr $(, $filter:expr)* $(,)?) => {
        $crate::with_conn!(&mut *$conn, |c| $table::table
            .filter($table::$time.lt($before))
            $(.filter($filter))*
            .order($table::$time.asc())
            .select($table::$id)
            .limit($batch)
            .load::<String>(c)
            .await)
    };
}
