//! Everything a licence operation can refuse or fail with.

use shared_db::DbError;
use shared_db::paging::PagingError;

use super::ValidationCode;

/// Everything a licence operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    /// No licence with that id.
    #[error("no licence has that id")]
    NotFound,
    /// No policy with that id.
    #[error("no policy has that id")]
    PolicyNotFound,
    /// The policy cannot be deleted while licences name it.
    #[error("{0} licence(s) name this policy; move them to another policy first")]
    PolicyInUse(i64),
    /// No such machine on the licence.
    #[error("no machine with that fingerprint or id is activated on this licence")]
    MachineNotFound,
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
    /// The lifecycle does not allow this change.
    #[error("cannot {action} a {from} licence")]
    InvalidTransition {
        /// What was asked.
        action: &'static str,
        /// The current status.
        from: &'static str,
    },
    /// The key is malformed or opens no licence.
    #[error("{0}")]
    KeyInvalid(String),
    /// The licence cannot be used for this (suspended, expired, over its limit...).
    #[error("{detail}")]
    NotValid {
        /// The validation code.
        code: ValidationCode,
        /// In words.
        detail: String,
    },
    /// That fingerprint is already activated on the licence.
    #[error("a machine with this fingerprint is already activated on this licence")]
    MachineExists,
    /// The signing key could not be loaded or used.
    #[error("licence signing key: {0}")]
    Signing(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl shared_db::LockConflict for LicenseError {
    fn is_lock_conflict(&self) -> bool {
        matches!(self, LicenseError::Db(e) if e.is_lock_conflict())
    }
}

/// A refused field.
pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> LicenseError {
    LicenseError::Invalid {
        field,
        message: message.into(),
    }
}
