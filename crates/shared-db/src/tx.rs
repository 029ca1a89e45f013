//! The one way writers run a transaction: [`transaction!`](crate::transaction) runs the
//! body in a transaction and runs it again, from the start, when it lost a lock race (a
//! MySQL deadlock or lock wait timeout, SQLite busy), up to [`RETRIES`] times with a short
//! random pause. [`retrying`] does the same for any operation that takes its own
//! connection. The body must be safe to run again: it reads what it needs inside the
//! transaction, and nothing outside it has changed when it fails.

use std::time::Duration;

use crate::DbError;

/// Runs after a lost lock race before the error is returned.
pub const RETRIES: u32 = 5;

/// An error that can say it lost a lock race (and the work may simply run again).
pub trait LockConflict {
    /// True for a MySQL deadlock or lock wait timeout, or SQLite busy.
    fn is_lock_conflict(&self) -> bool;
}

impl LockConflict for DbError {
    fn is_lock_conflict(&self) -> bool {
        DbError::is_lock_conflict(self)
    }
}

/// Whether to run again after `tries` lost races ending in `e`; pauses first when so.
#[doc(hidden)]
pub async fn again<E: LockConflict>(e: &E, tries: &mut u32) -> bool {
    if !e.is_lock_conflict() || *tries >= RETRIES {
        return false;
    }
    *tries += 1;
    tracing::debug!(attempt = *tries, "lost a lock race; running the transaction again");
    tokio::time::sleep(Duration::from_millis(rand::random_range(1..20) * u64::from(*tries))).await;
    true
}

/// Runs `op` again while it fails with a lock conflict, up to [`RETRIES`] times.
pub async fn retrying<T, E, F, Fut>(mut op: F) -> Result<T, E>
where
    E: LockConflict,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if again(&e, &mut tries).await => continue,
            other => return other,
        }
    }
}

/// Evaluates `$op` (an awaited statement or transaction of its own, borrowing a
/// connection) again while it fails with a lock conflict: [`retrying`] for code that
/// holds a `&mut DbConn`, which a closure could not lend to each attempt.
#[macro_export]
macro_rules! retrying {
    ($op:expr) => {{
        let mut tries = 0;
        loop {
            match $op {
                Err(e) if $crate::tx::again(&e, &mut tries).await => continue,
                other => break other,
            }
        }
    }};
}

/// Runs `body` in a transaction on `conn` (a `&mut DbConn`), committed when it returns
/// `Ok`, and from the start again when it lost a lock race (see the module).
///
/// ```text
/// let id = shared_db::transaction!(conn, LicenseError, |c| {
///     insert(c, &row).await?;
///     events::record(c, "license.created", actor, &subject, json!({})).await?;
///     Ok(row.id.clone())
/// })?;
/// ```
///
/// The body borrows what it uses (it may run more than once): clone inside it what it
/// must own.
#[macro_export]
macro_rules! transaction {
    ($conn:expr, $err:ty, |$c:ident| $body:expr) => {
        $crate::retrying!($crate::DbConn::transaction::<_, $err, _>(&mut *$conn, async |$c| $body).await)
    };
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::{LockConflict, RETRIES, retrying};

    #[derive(Debug, PartialEq)]
    enum E {
        Locked,
        Other,
    }

    impl LockConflict for E {
        fn is_lock_conflict(&self) -> bool {
            *self == E::Locked
        }
    }

    #[tokio::test]
    async fn runs_again_after_lock_conflicts_only() {
        let runs = AtomicU32::new(0);
        let r: Result<u32, E> = retrying(|| async {
            let n = runs.fetch_add(1, Ordering::SeqCst);
            if n < 2 { Err(E::Locked) } else { Ok(n) }
        })
        .await;
        assert_eq!(r, Ok(2));

        runs.store(0, Ordering::SeqCst);
        let r: Result<(), E> = retrying(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(E::Other)
        })
        .await;
        assert_eq!((r, runs.load(Ordering::SeqCst)), (Err(E::Other), 1));

        runs.store(0, Ordering::SeqCst);
        let r: Result<(), E> = retrying(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(E::Locked)
        })
        .await;
        assert_eq!((r, runs.load(Ordering::SeqCst)), (Err(E::Locked), RETRIES + 1));
    }
}
