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
