//! The bridge section: licence expiry reminders and where webhooks may point.

use super::{ConfigError, Lookup, bad, parse_bool};

/// Reads `LICENSE_REMINDER_DAYS`, `LICENSE_REMINDER_CHANNEL` (else `SLACK_DEFAULT_CHANNEL`)
/// and `WEBHOOK_ALLOW_PRIVATE`.
pub fn parse(get: &Lookup<'_>) -> Result<bridge::BridgeSettings, ConfigError> {
    Ok(bridge::BridgeSettings {
        reminder_days: match get("LICENSE_REMINDER_DAYS").as_deref() {
            None => vec![30, 7, 1],
            Some("off") | Some("none") => Vec::new(),
            Some(v) => v
                .split(',')
                .map(|d| d.trim().parse::<i64>().ok().filter(|d| (1..=365).contains(d)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    bad(
                        "LICENSE_REMINDER_DAYS",
                        format!("`{v}`: days from 1 to 365, comma-separated, or off"),
                    )
                })?,
        },
        reminder_channel: get("LICENSE_REMINDER_CHANNEL").or_else(|| get("SLACK_DEFAULT_CHANNEL")),
        allow_internal_webhooks: parse_bool(get, "WEBHOOK_ALLOW_PRIVATE", false)?,
        ..bridge::BridgeSettings::default()
    })
}
