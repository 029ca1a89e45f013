//! The licence server's periodic work: the sweep of dead machines (and of failed
//! validations held back), every [`SWEEP_EVERY`], on every replica.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::LicenseService;

/// How often the sweep runs. Heartbeat intervals are at least 10 seconds, so a dead
/// machine is found at most this long after its interval ran out.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Sweeps every `every` until `shutdown`; a failed sweep is logged and retried at the
/// next tick.
pub async fn run(licenses: LicenseService, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => match licenses.sweep().await {
                Ok(r) if r.dead + r.culled + r.forgotten > 0 => {
                    tracing::info!(dead = r.dead, culled = r.culled, forgotten = r.forgotten, "licence machine sweep");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "licence machine sweep failed; retrying"),
            },
        }
    }
    // Failures held back are written before the process goes.
    licenses.flush_failed_validations().await;
}
