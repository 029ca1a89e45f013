//! The outbox's job: `email.send` delivers one group of up to 50 recipients.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use shared_db::jobs::Job;
use shared_db::worker::{JobError, JobHandler};

use crate::model::MailError;
use crate::service::MailService;

/// The queue of sends (one job per group of up to 50 recipients).
pub const SEND_QUEUE: &str = "email.send";
/// Attempts at one group before it fails.
pub(crate) const ATTEMPTS: i32 = 25;

/// A storage failure while delivering: the job runs again.
pub(crate) fn retry(e: MailError) -> JobError {
    JobError::Retry(e.to_string())
}

/// Runs `email.send` jobs.
pub struct SendHandler(pub Arc<MailService>);

impl JobHandler for SendHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.deliver(job))
    }
}

pub use crate::store::messages::prune_finished as prune;
