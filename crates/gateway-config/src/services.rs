//! The configuration turned into services: the database pool, the secret and its key
//! ring, the licence service, the mail and Slack transports and the storage backends.
//! The gateway's `app` and its CLI build what they need from here, so both run on the
//! same services, configured and logged the same way.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use blob_store::BlobStore;
use blob_store::namespace::Namespace;
use license_core::LicenseService;
use mailer::MailService;
use mailer::sns::SnsVerifier;
use mailer::transport::{DevMailbox, MailMode, Mailer, SesMailer};
use secrecy::{ExposeSecret, SecretString};
use shared_db::{DbPool, KeyRing, migrations};
use slack_notify::transport::{DevSink, SlackApi, SlackMode, SlackNotifier};

use crate::{Config, SecretSource};

/// Creates the folder of a file-backed SQLite database.
pub fn ensure_database_folder(config: &Config) -> anyhow::Result<()> {
    if let Some(file) = config.database.url.sqlite_file()
        && let Some(parent) = Path::new(file).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the database folder {}", parent.display()))?;
    }
    Ok(())
}

/// Opens the pool, creating the SQLite folder and applying migrations as configured.
pub async fn open_database(config: &Config) -> anyhow::Result<DbPool> {
    ensure_database_folder(config)?;
    if config.database.migrate_on_start {
        let applied = migrations::run_pending(&config.database.url)
            .await
            .with_context(|| format!("migrating {}", config.database.url))?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied database migrations");
        }
    }
    Ok(DbPool::new(config.database.url.clone(), config.database.pool.clone())?)
}

/// The API key secret: configured, or (embedded default only) generated once and kept
/// in `DATA_DIR/secret_key` with owner-only permissions.
pub fn load_secret(source: &SecretSource) -> anyhow::Result<SecretString> {
    let path = match source {
        SecretSource::Configured(s) => return Ok(s.clone()),
        SecretSource::GeneratedFile(path) => path,
    };
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim();
        if existing.len() >= 16 {
            return Ok(SecretString::from(existing.to_owned()));
        }
        anyhow::bail!(
            "{} is too short to be a secret key; delete it or set SECRET_KEY",
            path.display()
        );
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut random = [0u8; 32];
    rand::fill(&mut random);
    let secret = data_encoding::BASE64URL_NOPAD.encode(&random);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    tracing::warn!(
        path = %path.display(),
        "SECRET_KEY is not set: generated one for this embedded install. Set SECRET_KEY in production; API keys are bound to it"
    );
    Ok(SecretString::from(secret))
}

/// Each namespace with its store: S3 (one client per bucket) when `S3_BUCKET` is set,
/// otherwise the local folder.
pub fn storage(config: &Config) -> anyhow::Result<Vec<(Namespace, Arc<dyn BlobStore>)>> {
    let mut out = Vec::new();
    match &config.storage.s3 {
        Some(s3) => {
            let mut by_bucket: std::collections::HashMap<String, Arc<dyn BlobStore>> = Default::default();
            for ns in &config.storage.namespaces {
                let bucket = ns.bucket.clone().unwrap_or_else(|| s3.bucket.clone());
                let store = by_bucket
                    .entry(bucket.clone())
                    .or_insert_with(|| {
                        Arc::new(blob_store::S3Store::new(&blob_store::S3Config { bucket, ..s3.clone() }))
                    })
                    .clone();
                out.push((ns.clone(), store));
            }
            tracing::info!(bucket = %s3.bucket, endpoint = ?s3.endpoint, "storage: S3");
        }
        None => {
            let local: Arc<dyn BlobStore> =
                Arc::new(blob_store::LocalStore::new(&config.storage.blob_dir).with_context(|| {
                    format!(
                        "opening the storage folder {} (BLOB_DIR)",
                        config.storage.blob_dir.display()
                    )
                })?);
            out.extend(config.storage.namespaces.iter().map(|ns| (ns.clone(), local.clone())));
            tracing::info!(folder = %config.storage.blob_dir.display(), "storage: local folder");
        }
    }
    Ok(out)
}

/// The one key ring: `SECRET_KEY` (resolved as `secret`) and `SECRET_KEY_PREVIOUS`, for
/// every digest, signature and seal the services make.
pub fn key_ring(config: &Config, secret: &SecretString) -> KeyRing {
    KeyRing::new(secret.expose_secret().as_bytes(), &previous_secrets(config))
}

/// The earlier secrets (`SECRET_KEY_PREVIOUS`) as bytes.
fn previous_secrets(config: &Config) -> Vec<&[u8]> {
    config
        .secrets
        .previous
        .iter()
        .map(|s| s.expose_secret().as_bytes())
        .collect()
}

/// Licences, with the configured signing key and any earlier secrets.
pub fn license_service(config: &Config, pool: &DbPool, secret: &SecretString) -> anyhow::Result<LicenseService> {
    Ok(LicenseService::new(
        pool.clone(),
        key_ring(config, secret),
        config.licenses.signing_key.as_ref().map(|k| k.expose_secret()),
    )?)
}

/// Email through SES, the dev mailbox, or not at all (`MAIL_TRANSPORT`); says which.
pub fn mail_service(config: &Config, pool: &DbPool, wake: Arc<tokio::sync::Notify>) -> anyhow::Result<MailService> {
    let mail = &config.mail;
    let transport: Option<Arc<dyn Mailer>> = match (mail.transport, &mail.ses) {
        (MailMode::Ses, Some(ses)) => {
            tracing::info!(
                region = %ses.region,
                endpoint = ses.endpoint.as_deref().unwrap_or("AWS"),
                sender = mail.settings.default_from.as_deref().unwrap_or("-"),
                "email: sending through Amazon SES"
            );
            Some(Arc::new(SesMailer::new(ses)))
        }
        (MailMode::Ses, None) => anyhow::bail!("MAIL_TRANSPORT is ses without SES settings"),
        (MailMode::Dev, _) => {
            tracing::info!(
                "email: dev mailbox (messages are captured in the database, not sent; GET /api/v1/emails/{{id}}/raw). Set SES_SENDER_EMAIL and AWS_SES_REGION to send through SES"
            );
            Some(Arc::new(DevMailbox))
        }
        (MailMode::NotConfigured, _) => {
            tracing::warn!(
                "email: not configured; sends are refused (503 not_configured). Set SES_SENDER_EMAIL and AWS_SES_REGION to send through SES, or MAIL_TRANSPORT=dev to capture messages"
            );
            None
        }
    };
    let sns = SnsVerifier::new(mail.sns.clone()).map_err(|e| anyhow::anyhow!("SNS verifier: {e}"))?;
    Ok(MailService::new(
        pool.clone(),
        transport,
        Some(sns),
        mail.settings.clone(),
        wake,
    )?)
}

/// Slack through the bot token, the dev sink, or not at all (`SLACK_TRANSPORT`); says which.
pub fn slack_notifier(config: &Config) -> anyhow::Result<Option<Arc<dyn SlackNotifier>>> {
    Ok(match (config.slack.transport, &config.slack.bot_token) {
        (SlackMode::Slack, Some(token)) => {
            tracing::info!(api = %config.slack.api_url, "Slack: posting with the bot token");
            Some(Arc::new(SlackApi::new(token.expose_secret(), &config.slack.api_url)?))
        }
        (SlackMode::Slack, None) => anyhow::bail!("SLACK_TRANSPORT is slack without SLACK_BOT_TOKEN"),
        (SlackMode::Dev, _) => {
            tracing::info!(
                "Slack: dev sink (messages are captured in the database, not sent). Set SLACK_BOT_TOKEN to post to Slack"
            );
            Some(Arc::new(DevSink::default()))
        }
        (SlackMode::NotConfigured, _) => {
            tracing::warn!(
                "Slack: not configured; posts are refused (503 not_configured). Set SLACK_BOT_TOKEN to post to Slack, or SLACK_TRANSPORT=dev to capture messages"
            );
            None
        }
    })
}
