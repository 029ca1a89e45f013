//! What the service refuses or fails with.

use shared_db::DbError;
use shared_db::paging::PagingError;

use crate::sns::SnsError;
use crate::template::TemplateError;

/// What the service refuses or fails with.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A field is unacceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Several fields are unacceptable (each an [`MailError::Invalid`]).
    #[error("{} fields are invalid", .0.len())]
    InvalidFields(Vec<MailError>),
    /// A template does not parse or lacks a variable.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The built message is larger than allowed.
    #[error("the message is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No such thing.
    #[error("no {0} has that id or name")]
    NotFound(&'static str),
    /// The request conflicts with an earlier one.
    #[error("{message}")]
    Conflict {
        /// `idempotency_conflict`.
        code: &'static str,
        /// In words.
        message: String,
    },
    /// Raw MIME is served by the dev mailbox only.
    #[error("the raw message is available in the dev mailbox mode only (this gateway's mail transport is {0})")]
    RawUnavailable(&'static str),
    /// No mail transport is configured: nothing was stored.
    #[error(
        "email is not configured on this gateway: set SES_SENDER_EMAIL and AWS_SES_REGION (or MAIL_TRANSPORT=dev to capture messages without sending them)"
    )]
    NotConfigured,
    /// An SNS message was refused.
    #[error(transparent)]
    Sns(#[from] SnsError),
    /// A page request was refused (`limit` or `cursor`).
    #[error(transparent)]
    Paging(#[from] PagingError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl MailError {
    /// One error for all of `wrong`: itself when alone, otherwise [`MailError::InvalidFields`].
    pub(crate) fn all(mut wrong: Vec<MailError>) -> Self {
        if wrong.len() == 1 {
            wrong.remove(0)
        } else {
            MailError::InvalidFields(wrong)
        }
    }

    /// Each field at fault with what is wrong with it.
    pub fn fields(&self) -> Vec<(&str, &str)> {
        match self {
            MailError::Invalid { field, message } => vec![(field.as_str(), message.as_str())],
            MailError::InvalidFields(all) => all.iter().flat_map(MailError::fields).collect(),
            _ => Vec::new(),
        }
    }
}

impl shared_db::LockConflict for MailError {
    fn is_lock_conflict(&self) -> bool {
        matches!(self, MailError::Db(e) if e.is_lock_conflict())
    }
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> MailError {
    MailError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> MailError {
    MailError::Db(DbError::Corrupt(e.to_string()))
}

pub(crate) fn conflict_key() -> MailError {
    MailError::Conflict {
        code: "idempotency_conflict",
        message: "this Idempotency-Key was used with a different request".into(),
    }
}
