//! The retention section: how long the audit trail, messages and webhook deliveries are
//! kept before the hourly pruning removes them.

use std::time::Duration;

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
