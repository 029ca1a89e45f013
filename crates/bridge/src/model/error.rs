//! What the bridge refuses or fails with.

use shared_db::DbError;
use shared_db::paging::PagingError;

/// What the bridge refuses or fails with.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A field is unacceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A page request (`limit` or `cursor`) is refused.
    #[error(transparent)]
    Paging(#[from] PagingError),
    /// No such rule or webhook.
    #[error("no {0} has that id")]
    NotFound(&'static str),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A refused field.
pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> BridgeError {
    BridgeError::Invalid {
        field,
        message: message.into(),
    }
}

/// Data that cannot be what it should (stored JSON, sealing).
pub(crate) fn corrupt(e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Db(DbError::Corrupt(e.to_string()))
}

impl shared_db::LockConflict for BridgeError {
    fn is_lock_conflict(&self) -> bool {
        matches!(self, BridgeError::Db(e) if e.is_lock_conflict())
    }
}
