//! The database layer's error type.

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
    Query(#[from] diesel::result::Error),
    /// Running migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl DbError {
    /// True when the database could not be reached (as opposed to a bad query): callers
    /// answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::Error as E;
        matches!(
            self,
            DbError::Unavailable(_)
                | DbError::Query(E::DatabaseError(diesel::result::DatabaseErrorKind::ClosedConnection, _))
                | DbError::Query(E::BrokenTransactionManager)
        )
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
