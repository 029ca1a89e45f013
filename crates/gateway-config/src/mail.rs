//! The mail section: the transport (SES, the dev mailbox, or none), SES's settings, the
//! outbox's limits and SNS verification.

use std::time::Duration;

use shared_db::Backend;

use super::aws::AwsCredentials;
use super::{ConfigError, Lookup, bad, http_url, list, parse_bool, parse_num};

/// The sender of messages without `from` in the dev mailbox when `SES_SENDER_EMAIL` is unset.
pub const DEV_SENDER: &str = "Event Bridge Dev <noreply@event-bridge.localhost>";

/// Email settings.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// How email leaves (`MAIL_TRANSPORT`).
    pub transport: mailer::transport::MailMode,
    /// SES settings (set when the transport is `ses`).
    pub ses: Option<mailer::transport::SesConfig>,
    /// The outbox's settings.
    pub settings: mailer::MailSettings,
    /// SNS verification.
    pub sns: mailer::sns::SnsConfig,
}

/// `MAIL_TRANSPORT`; unset: SES when `SES_SENDER_EMAIL` and `AWS_SES_REGION` are set,
/// otherwise the dev mailbox on SQLite (zero-configuration start) and nothing on MySQL.
fn transport(get: &Lookup<'_>, backend: Backend) -> Result<mailer::transport::MailMode, ConfigError> {
    use mailer::transport::MailMode;
    Ok(match get("MAIL_TRANSPORT").as_deref() {
        Some("ses") => MailMode::Ses,
        Some("dev") => MailMode::Dev,
        Some(other) => return Err(bad("MAIL_TRANSPORT", format!("`{other}`: use ses or dev"))),
        None if get("SES_SENDER_EMAIL").is_some() && get("AWS_SES_REGION").is_some() => MailMode::Ses,
        None if backend == Backend::Sqlite => MailMode::Dev,
        None => MailMode::NotConfigured,
    })
}

impl MailConfig {
    /// Reads `MAIL_TRANSPORT`, `SES_*`, `AWS_SES_REGION`, `AWS_ENDPOINT_URL_SES`, `EMAIL_*`
    /// and `SNS_*`.
    pub fn parse(get: &Lookup<'_>, backend: Backend, aws: &AwsCredentials) -> Result<Self, ConfigError> {
        let default_from = get("SES_SENDER_EMAIL");
        if let Some(f) = &default_from {
            mailer::address::Mailbox::parse(f).map_err(|m| bad("SES_SENDER_EMAIL", m))?;
        }
        let region = get("AWS_SES_REGION");
        let transport = transport(get, backend)?;
        let ses = if transport == mailer::transport::MailMode::Ses {
            let endpoint = http_url(get, "AWS_ENDPOINT_URL_SES")?;
            let region = region.ok_or_else(|| bad("AWS_SES_REGION", "required to send through SES"))?;
            Some(mailer::transport::SesConfig {
                credentials: aws.provider(),
                region,
                endpoint,
                configuration_set: get("SES_CONFIGURATION_SET"),
                timeout: Duration::from_secs(30),
            })
        } else {
            None
        };
        let max_send_rate = match get("EMAIL_MAX_SEND_RATE") {
            None => None,
            Some(v) => match v.parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => Some(r),
                _ => return Err(bad("EMAIL_MAX_SEND_RATE", format!("`{v}` is not a positive number"))),
            },
        };
        let max_message_bytes = parse_num::<usize>(get, "EMAIL_MAX_MESSAGE_BYTES", 10 * 1024 * 1024)?;
        if max_message_bytes < 1024 {
            return Err(bad("EMAIL_MAX_MESSAGE_BYTES", "must be at least 1024"));
        }
        let mut sns = mailer::sns::SnsConfig::default();
        let hosts = list(get, "SNS_CERT_HOSTS");
        if !hosts.is_empty() {
            sns.cert_hosts = hosts;
        }
        sns.topics = list(get, "SNS_TOPIC_ARNS");
        sns.allow_http = parse_bool(get, "SNS_ALLOW_HTTP_CERTS", false)?;
        sns.max_age = Duration::from_secs(parse_num::<u64>(get, "SNS_MAX_AGE_SECS", 3600)?);
        // The dev mailbox sends nothing, so a sender nobody configured harms no one: a first
        // message needs no `from`.
        let default_from = match (default_from, transport) {
            (None, mailer::transport::MailMode::Dev) => Some(DEV_SENDER.to_owned()),
            (from, _) => from,
        };
        Ok(Self {
            transport,
            ses,
            settings: mailer::MailSettings {
                default_from,
                max_message_bytes,
                max_send_rate,
                ..mailer::MailSettings::default()
            },
            sns,
        })
    }
}
