//! The retention section: how long the audit trail, messages and webhook deliveries are
//! kept, and the pruning that removes what is older, hourly in the background ([`run`])
//! and on demand (`gateway prune`, [`prune`]). Each crate removes its own rows; this only
//! asks each in turn, in batches of [`shared_db::retention::BATCH`]. Licences, machines,
//! API keys, documents and templates are never pruned.

use std::time::Duration;

use shared_db::retention::in_batches;
use shared_db::{DbError, DbPool};
use tokio_util::sync::CancellationToken;

use super::{ConfigError, Lookup, bad};

/// How long each kind of record is kept; `None` keeps it forever (`off`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `EVENTS_RETENTION`: the audit trail (default 365 days).
    pub events: Option<Duration>,
    /// `MESSAGE_RETENTION`: emails and Slack messages with their bodies and history, once
    /// finished (default 90 days); a message still queued or in flight is never removed.
    pub messages: Option<Duration>,
    /// `WEBHOOK_DELIVERY_RETENTION`: the webhook delivery log (default 30 days).
    pub webhook_deliveries: Option<Duration>,
}

const DAY: u64 = 24 * 60 * 60;

impl RetentionConfig {
    /// Reads `EVENTS_RETENTION`, `MESSAGE_RETENTION` and `WEBHOOK_DELIVERY_RETENTION`.
    pub fn parse(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        Ok(RetentionConfig {
            events: period(get, "EVENTS_RETENTION", 365)?,
            messages: period(get, "MESSAGE_RETENTION", 90)?,
            webhook_deliveries: period(get, "WEBHOOK_DELIVERY_RETENTION", 30)?,
        })
    }
}

/// A period such as `365d`, `12h` or `90s` (humantime's units), or `off`.
fn period(get: &Lookup<'_>, var: &'static str, default_days: u64) -> Result<Option<Duration>, ConfigError> {
    match get(var) {
        None => Ok(Some(Duration::from_secs(default_days * DAY))),
        Some(v) if v.eq_ignore_ascii_case("off") => Ok(None),
        Some(v) => match humantime::parse_duration(&v) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(100 * 365 * DAY) => Ok(Some(d)),
            _ => Err(bad(
                var,
                format!("`{v}`: a period from 1s to 100 years such as 365d, 12h or 90s, or off"),
            )),
        },
    }
}

/// How many rows one pruning removed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Audit events.
    pub events: u64,
    /// Emails, with their bodies and deliveries.
    pub emails: u64,
    /// Slack messages.
    pub slack_messages: u64,
    /// Webhook delivery records.
    pub webhook_deliveries: u64,
}

impl Pruned {
    /// Every row removed.
    pub fn total(&self) -> u64 {
        self.events + self.emails + self.slack_messages + self.webhook_deliveries
    }
}

impl std::fmt::Display for Pruned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "events: {}, emails: {}, slack messages: {}, webhook deliveries: {}",
            self.events, self.emails, self.slack_messages, self.webhook_deliveries
        )
    }
}

fn cutoff(period: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX)
}

/// Removes everything older than its period, now; a kind set to `off` is left alone.
pub async fn prune(pool: &DbPool, config: &RetentionConfig) -> Result<Pruned, DbError> {
    let mut pruned = Pruned::default();
    let batch = shared_db::retention::BATCH;
    if let Some(period) = config.events {
        let before = cutoff(period);
        pruned.events = in_batches(pool, |c| Box::pin(shared_db::events::prune(c, before, batch))).await?;
    }
    if let Some(period) = config.messages {
        let before = cutoff(period);
        pruned.emails = in_batches(pool, |c| Box::pin(mailer::jobs::prune(c, before, batch))).await?;
        pruned.slack_messages = in_batches(pool, |c| Box::pin(slack_notify::jobs::prune(c, before, batch))).await?;
    }
    if let Some(period) = config.webhook_deliveries {
        let before = cutoff(period);
        pruned.webhook_deliveries =
            in_batches(pool, |c| Box::pin(bridge::jobs::prune_deliveries(c, before, batch))).await?;
    }
    Ok(pruned)
}

/// How often the background pruning runs: hourly, or as often as the shortest period
/// when that is shorter (second-long periods are for tests), at least every second.
pub fn every(config: &RetentionConfig) -> Option<Duration> {
    [config.events, config.messages, config.webhook_deliveries]
        .into_iter()
        .flatten()
        .min()
        .map(|shortest| shortest.clamp(Duration::from_secs(1), Duration::from_secs(3600)))
}

/// Prunes at start and then [`every`] period until `shutdown`. Replicas may run it at the
/// same time: each removes by id in short batches, so they only find less to do.
pub async fn run(pool: DbPool, config: RetentionConfig, shutdown: CancellationToken) {
    let Some(period) = every(&config) else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // A long first round (a backlog after an upgrade) must not hold up a shutdown:
            // the round is dropped at once (a statement in flight commits or rolls back on
            // its own), and the next start goes on from there.
            _ = tick.tick() => tokio::select! {
                _ = shutdown.cancelled() => break,
                outcome = prune(&pool, &config) => match outcome {
                    Ok(p) if p.total() == 0 => {}
                    Ok(p) => tracing::info!(events = p.events, emails = p.emails, slack_messages = p.slack_messages,
                        webhook_deliveries = p.webhook_deliveries, "retention: pruned old records"),
                    Err(e) => tracing::warn!(error = %e, "retention: pruning failed; trying again at the next round"),
                },
            },
        }
    }
}
