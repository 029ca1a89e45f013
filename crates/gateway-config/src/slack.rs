//! The Slack section: the transport (the Web API with a bot token, the dev sink, or none),
//! the default channel and the pace per channel.

use secrecy::SecretString;
use shared_db::Backend;
use slack_notify::transport::SlackMode;

use super::{ConfigError, Lookup, bad, http_url, parse_num, positive};

/// Slack settings.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// How Slack messages leave (`SLACK_TRANSPORT`).
    pub transport: SlackMode,
    /// Slack bot token (set when the transport is `slack`).
    pub bot_token: Option<SecretString>,
    /// Slack Web API base URL.
    pub api_url: String,
    /// Channel for messages that name none.
    pub default_channel: Option<String>,
    /// Messages per second per channel.
    pub messages_per_second: u32,
    /// Environment label for messages that name none (`APP_ENV`).
    pub app_env: Option<String>,
}

/// `SLACK_TRANSPORT`; unset: Slack when `SLACK_BOT_TOKEN` is set, otherwise the dev sink on
/// SQLite (zero-configuration start) and nothing on MySQL.
fn transport(get: &Lookup<'_>, backend: Backend) -> Result<SlackMode, ConfigError> {
    let token = get("SLACK_BOT_TOKEN").is_some();
    Ok(match get("SLACK_TRANSPORT").as_deref() {
        Some("slack") if token => SlackMode::Slack,
        Some("slack") => return Err(bad("SLACK_BOT_TOKEN", "required when SLACK_TRANSPORT is slack")),
        Some("dev") => SlackMode::Dev,
        Some(other) => return Err(bad("SLACK_TRANSPORT", format!("`{other}`: use slack or dev"))),
        None if token => SlackMode::Slack,
        None if backend == Backend::Sqlite => SlackMode::Dev,
        None => SlackMode::NotConfigured,
    })
}

impl SlackConfig {
    /// Reads `SLACK_*` and `APP_ENV`.
    pub fn parse(get: &Lookup<'_>, backend: Backend) -> Result<Self, ConfigError> {
        let transport = transport(get, backend)?;
        let api_url = http_url(get, "SLACK_API_URL")?.unwrap_or_else(|| "https://slack.com/api".into());
        Ok(Self {
            transport,
            // The token is not used by the dev sink.
            bot_token: get("SLACK_BOT_TOKEN")
                .filter(|_| transport == SlackMode::Slack)
                .map(SecretString::from),
            api_url,
            default_channel: get("SLACK_DEFAULT_CHANNEL"),
            messages_per_second: positive(
                "SLACK_MESSAGES_PER_SECOND",
                parse_num::<u32>(get, "SLACK_MESSAGES_PER_SECOND", 1)?,
            )?,
            app_env: get("APP_ENV"),
        })
    }
}
