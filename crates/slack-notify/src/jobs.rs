//! The Slack jobs: `slack.post` delivers a queued message, `slack.update` changes a
//! posted one; both are ordered per channel.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use shared_db::jobs::Job;
use shared_db::worker::{JobError, JobHandler};

use crate::model::NotifyError;
use crate::service::SlackService;

/// The queue of new messages.
pub const POST_QUEUE: &str = "slack.post";
/// The queue of updates to posted messages.
pub const UPDATE_QUEUE: &str = "slack.update";

pub(crate) fn retry(e: NotifyError) -> JobError {
    JobError::Retry(e.to_string())
}

pub(crate) fn message_id(job: &Job) -> Result<String, JobError> {
    let payload: serde_json::Value = job.payload().map_err(|e| JobError::Fatal(e.to_string()))?;
    payload["message_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| JobError::Fatal("no message_id".into()))
}

/// Runs `slack.post` jobs.
pub struct PostHandler(pub Arc<SlackService>);

impl JobHandler for PostHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.deliver(job))
    }
}

/// Runs `slack.update` jobs.
pub struct UpdateHandler(pub Arc<SlackService>);

impl JobHandler for UpdateHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.deliver_update(job))
    }
}

pub use crate::store::prune_finished as prune;
