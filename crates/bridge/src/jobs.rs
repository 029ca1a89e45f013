//! The bridge's job handlers (`bridge.rule`, `bridge.webhook`) and its periodic work
//! ([`run`]): events dispatched every second, licence reminders every hour.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use shared_db::jobs::Job;
use shared_db::worker::{JobError, JobHandler};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::model::BridgeError;
use crate::service::BridgeService;

/// The bridge's background work until `shutdown`: events dispatched to rules and
/// webhooks every second, licence reminders checked at start and every hour. `wake`
/// tells the job worker when there is new work.
pub async fn run(bridge: Arc<BridgeService>, wake: Arc<Notify>, shutdown: CancellationToken) {
    match bridge.skipped_channels().await {
        Ok(None) => {}
        Ok(Some(skipped)) => tracing::warn!("bridge: {skipped}; they are skipped until configured"),
        Err(e) => tracing::warn!(error = %e, "could not read the rules to check their channels"),
    }
    let mut dispatch = tokio::time::interval(Duration::from_secs(1));
    dispatch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reminders = tokio::time::interval(Duration::from_secs(3600));
    reminders.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = dispatch.tick() => match bridge.dispatch().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(queued = n, "bridged events");
                    wake.notify_one();
                }
                Err(e) => tracing::warn!(error = %e, "bridging events failed; retrying"),
            },
            _ = reminders.tick() => {
                let run = async {
                    bridge.ensure_reminder_template().await?;
                    bridge.run_reminders().await
                };
                match run.await {
                    Ok((0, 0)) => {}
                    Ok((reminded, expired)) => {
                        tracing::info!(reminded, expired, "licence expiry reminders");
                        wake.notify_one();
                    }
                    Err(e) => tracing::warn!(error = %e, "licence reminders failed; retrying in an hour"),
                }
            }
        }
    }
}

/// The (target, event id) a delivery job names.
pub(crate) fn targets(job: &Job) -> Result<(String, String), JobError> {
    let p: Value = job.payload().map_err(|e| JobError::Fatal(e.to_string()))?;
    match (p["target"].as_str(), p["event_id"].as_str()) {
        (Some(t), Some(e)) => Ok((t.to_owned(), e.to_owned())),
        _ => Err(JobError::Fatal("no target or event_id".into())),
    }
}

/// A failure worth another try.
pub(crate) fn retry(e: BridgeError) -> JobError {
    JobError::Retry(e.to_string())
}

/// Runs `bridge.rule` jobs.
pub struct RuleHandler(pub Arc<BridgeService>);

impl JobHandler for RuleHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.run_rule(job))
    }
}

/// Runs `bridge.webhook` jobs.
pub struct WebhookHandler(pub Arc<BridgeService>);

impl JobHandler for WebhookHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.run_webhook(job))
    }
}

pub use crate::store::prune_deliveries;
