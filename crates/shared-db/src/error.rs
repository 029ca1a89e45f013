//! The database layer's error type.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything that can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The configured URL cannot be used.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// No connection could be had in time, or the server cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error(transparent)]
    Query(diesel::result::Error),
    /// Running migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        if lost_connection(&e) {
            note_connection_loss();
        }
        DbError::Query(e)
    }
}

/// Whether a query failed because the connection is gone (the server stopped or
/// restarted, the network dropped), rather than because of the query.
fn lost_connection(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match e {
        E::BrokenTransactionManager | E::DatabaseError(K::ClosedConnection, _) => true,
        // mysql_async reports I/O and driver failures as unknown database errors.
        E::DatabaseError(K::Unknown, info) => {
            let m = info.message();
            [
                "Input/output error",
                "Connection to the server is closed",
                "Broken pipe",
                "Connection reset",
                "Connection refused",
                "unexpected end of file",
                "server has gone away",
                "Lost connection",
            ]
            .iter()
            .any(|needle| m.to_ascii_lowercase().contains(&needle.to_ascii_lowercase()))
        }
        _ => false,
    }
}

static LAST_LOSS_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Records that a connection was found lost: for the next few seconds every pooled
/// connection is checked before reuse, so dead ones are replaced as soon as the server
/// is back instead of failing until they idle out.
pub fn note_connection_loss() {
    LAST_LOSS_MS.store(now_ms(), Ordering::Relaxed);
}

/// Whether a connection was found lost in the last ten seconds.
pub(crate) fn recent_connection_loss() -> bool {
    let last = LAST_LOSS_MS.load(Ordering::Relaxed);
    last != 0 && now_ms().saturating_sub(last) < 10_000
}

impl DbError {
    /// True when the database could not be reached (as opposed to a bad query): callers
    /// answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(e) => lost_connection(e),
            _ => false,
        }
    }

    /// True when the statement lost a lock race (MySQL deadlock or lock wait timeout,
    /// SQLite busy) and can simply be run again.
    pub fn is_lock_conflict(&self) -> bool {
        match self {
            DbError::Query(diesel::result::Error::DatabaseError(_, info)) => {
                let m = info.message();
                m.contains("Deadlock found") || m.contains("Lock wait timeout") || m.contains("database is locked")
            }
            _ => false,
        }
    }

    /// An equivalent error (same variant, kind and message) for another caller of a
    /// shared query: classified the same way (`is_unavailable`, `is_lock_conflict`, ...).
    pub fn shared_copy(&self) -> DbError {
        use diesel::result::Error as E;
        match self {
            DbError::InvalidUrl(m) => DbError::InvalidUrl(m.clone()),
            DbError::Unavailable(m) => DbError::Unavailable(m.clone()),
            DbError::Migration(m) => DbError::Migration(m.clone()),
            DbError::Corrupt(m) => DbError::Corrupt(m.clone()),
            DbError::Query(E::DatabaseError(kind, info)) => {
                DbError::Query(E::DatabaseError(*kind, Box::new(info.message().to_owned())))
            }
            DbError::Query(E::NotFound) => DbError::Query(E::NotFound),
            DbError::Query(e) if lost_connection(e) => DbError::Unavailable(e.to_string()),
            DbError::Query(e) => DbError::Query(E::QueryBuilderError(e.to_string().into())),
        }
    }

    /// True when the error is a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

impl From<diesel::ConnectionError> for DbError {
    fn from(e: diesel::ConnectionError) -> Self {
        DbError::Unavailable(e.to_string())
    }
}
