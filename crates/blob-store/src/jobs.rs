//! Storage's periodic work: aborting multipart uploads left unfinished a day after they
//! started ([`crate::BlobService::sweep_uploads`]), every [`SWEEP_EVERY`], on every replica
//! (an upload two replicas sweep at once is aborted twice, which is harmless).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::BlobService;

/// How often abandoned uploads are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

/// Sweeps every `every` until `shutdown`; a failed sweep is logged and retried at the
/// next tick.
pub async fn run(blobs: Arc<BlobService>, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => match blobs.sweep_uploads(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(aborted = n, "aborted abandoned multipart uploads"),
                Err(e) => tracing::warn!(error = %e, "the sweep of abandoned uploads failed; retrying"),
            },
        }
    }
}
