//! Configuration from the environment (and an optional `.env`), using the original
//! service's variable names where they exist. An empty value counts as unset, so an
//! original `.env` with blank lines keeps working.
//!
//! One section per concern, each parsing its own variables: [`server`], [`database`],
//! [`secrets`], [`storage`] (with [`aws`]'s credentials, which SES shares), [`mail`],
//! [`slack`], [`licenses`], [`bridge`] and [`retention`].
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `APP_HOST` | `0.0.0.0` | address to listen on |
//! | `APP_PORT` | `8002` | port to listen on |
//! | `APP_URL` | `http://localhost:{APP_PORT}` | public base URL: the start of signed storage URLs on the local backend (set it behind a proxy) |
//! | `DATA_DIR` | `./data` | embedded database, generated secret key |
//! | `DATABASE_URL` | SQLite in `DATA_DIR` | `mysql://`, `mysql+aiomysql://`, `sqlite://path`, `sqlite::memory:` |
//! | `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER_ID`, `DB_PASS` | | MySQL from parts when `DATABASE_URL` is unset |
//! | `DB_IS_SSL` | `false` | require TLS to MySQL and verify the server's certificate and host name (system roots plus `DB_SSL_CA`); applies to `DATABASE_URL` too, whose own `ssl-mode=REQUIRED\|VERIFY_CA\|VERIFY_IDENTITY` and `ssl-ca=PATH` are also read |
//! | `DB_SSL_CA` | none | a PEM file of CA certificates trusted for the database (e.g. the RDS bundle); turns TLS on |
//! | `DB_POOL_SIZE` | `10` | most connections held |
//! | `DB_CONNECT_TIMEOUT_SECS` | `5` | opening one connection |
//! | `DB_ACQUIRE_TIMEOUT_SECS` | `5` | waiting for a free connection (then 503) |
//! | `DB_MIGRATE_ON_START` | `true` | apply pending migrations at start-up |
//! | `SECRET_KEY` | generated in `DATA_DIR` for SQLite; required for MySQL | keys API key and licence key digests, seals the licence signing key, signs storage URLs |
//! | `SECRET_KEY_PREVIOUS` | none | comma-separated earlier secrets still accepted after a rotation (keys are re-keyed on use) |
//! | `LOG_FORMAT` | `text` | `text` (coloured in a terminal) or `json` |
//! | `LOG_LEVEL` | `info` | a `tracing` filter; `RUST_LOG` wins when set |
//! | `MAX_JSON_BODY_BYTES` | `1048576` | larger JSON bodies get 413 |
//! | `HTTP_WORKERS` | CPU count | Actix worker threads |
//! | `MAX_CONNECTIONS` | `4096` | open connections held at most, over all workers (more wait in the backlog) |
//! | `SHUTDOWN_TIMEOUT_SECS` | `30` | how long jobs and requests in flight get on SIGTERM, in all; then the process exits |
//! | `BODY_IDLE_TIMEOUT_SECS` | `30` | a request body that sends nothing for this long is cut off (slow clients) |
//! | `PUBLIC_BODY_TIMEOUT_SECS` | `10` | the whole body of a request read before any key is checked (licence-holder calls, SNS) must arrive within this (then 408) |
//! | `MAX_CONNECTIONS_PER_ADDRESS` | `256` | open connections one client address may hold (more are closed at once); trusted proxies are not limited |
//! | `LICENSE_SIGNING_KEY` | generated, stored sealed in the database | PKCS#8 Ed25519 private key (PEM or base64) that signs licence certificates |
//! | `LICENSE_RATE_LIMIT_PER_MINUTE` | `600` | licence-holder calls (validate, activate, ...) per client address |
//! | `LICENSE_KEY_RATE_LIMIT_PER_MINUTE` | `120` | licence-holder calls per licence key |
//! | `AUTH_FAILURES_PER_MINUTE` | `60` | failed API-key authentications per client address before it gets 429 |
//! | `SLACK_TRANSPORT` | `slack` when `SLACK_BOT_TOKEN` is set; else `dev` on the embedded SQLite database, and not configured on MySQL | `slack` or `dev` (the dev sink keeps messages in the database, marked `captured`); not configured, Slack posts are refused with 503 `not_configured` |
//! | `SLACK_BOT_TOKEN` | none | a bot token (`xoxb-...`) with `chat:write`; required by `SLACK_TRANSPORT=slack` |
//! | `SLACK_API_URL` | `https://slack.com/api` | Slack Web API base URL (plain `http://` allowed, for test servers) |
//! | `SLACK_DEFAULT_CHANNEL` | none | channel for messages that name none |
//! | `SLACK_MESSAGES_PER_SECOND` | `1` | messages per second per channel (Slack's guidance) |
//! | `APP_ENV` | none | environment shown on Slack messages that name none |
//! | `WORKER_CONCURRENCY` | `8` | jobs (email, Slack) run at once by this replica |
//! | `MAX_DOCUMENT_BYTES` | `1048576` | largest shared document |
//! | `CORS_ALLOWED_ORIGINS` | none | comma-separated origins (`https://app.example.com`: scheme, host, optional port, no path) whose pages may call the API from a browser, or `*` alone for any; the local backend's signed storage URLs answer any origin regardless |
//! | `TRUSTED_PROXIES` | none | proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed (`Forwarded` never is) |
//! | `BLOB_DIR` | `DATA_DIR/blobs` on SQLite; on MySQL `S3_BUCKET` or `BLOB_DIR` is required | the local storage backend's folder (when `S3_BUCKET` is unset); on MySQL a folder every replica mounts |
//! | `S3_BUCKET` | unset: the local backend | turns on the S3 backend with this default bucket |
//! | `S3_REGION` | `AWS_SES_REGION`, then `us-east-1` | the bucket's region |
//! | `AWS_ENDPOINT_URL_S3` | AWS | an S3-compatible endpoint (MinIO, Ceph, R2, ...) |
//! | `S3_FORCE_PATH_STYLE` | `false` | path-style addressing (most S3-compatible servers want `true`) |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | unset: the standard AWS chain | static AWS credentials for SES and S3 (the original names); without them: `AWS_PROFILE` and the shared config/credentials files, EKS web identity, ECS container credentials, EC2 instance metadata (IMDSv2) |
//! | `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY` | AWS's credentials | keys of an S3-compatible store's own, while SES uses AWS's |
//! | `S3_PART_SIZE_MB` | `8` | multipart part size (5 or more); the memory one transfer holds |
//! | `S3_TIMEOUT_SECS` | `30` | connecting to S3, and each answer's first byte (then 503) |
//! | `BLOB_NAMESPACES` | `client`, `web` (1 GiB), `ai` (50 GiB) | JSON array of `{name, max_size, allowed_types?, prefix?, bucket?}` |
//! | `BLOB_NAMESPACES_FILE` | none | the same JSON read from a file (when `BLOB_NAMESPACES` is unset) |
//! | `MAIL_TRANSPORT` | `ses` when `SES_SENDER_EMAIL` and `AWS_SES_REGION` are set; else `dev` on the embedded SQLite database, and not configured on MySQL | `ses` or `dev` (the dev mailbox keeps messages in the database, marked `captured`); not configured, sends are refused with 503 `not_configured` |
//! | `SES_SENDER_EMAIL` | none (the dev mailbox: `Event Bridge Dev <noreply@event-bridge.localhost>`) | default sender (`Name <noreply@example.com>` or a bare address) |
//! | `AWS_SES_REGION` | none | SES region |
//! | `AWS_ENDPOINT_URL_SES` | AWS | an SES-compatible endpoint (the AWS SDK's standard name) |
//! | `SES_CONFIGURATION_SET` | none | configuration set named on every send (event publishing) |
//! | `EMAIL_MAX_SEND_RATE` | SES `GetSendQuota` (`MaxSendRate`), refreshed every 10 minutes | recipients per second, per replica |
//! | `EMAIL_MAX_MESSAGE_BYTES` | `10485760` | largest built MIME message (SES: 10 MB) |
//! | `SNS_CERT_HOSTS` | `sns.*.amazonaws.com,sns.*.amazonaws.com.cn` | hosts SNS signing certificates and subscribe URLs may come from (`*` = one AWS region label such as `us-east-1`) |
//! | `SNS_TOPIC_ARNS` | any | comma-separated topics whose notifications are accepted |
//! | `SNS_MAX_AGE_SECS` | `3600` | oldest SNS message accepted |
//! | `SNS_ALLOW_HTTP_CERTS` | `false` | accept `http://` certificate URLs (test servers only) |
//! | `LICENSE_REMINDER_DAYS` | `30,7,1` | days before expiry at which owners get a reminder email; `off` for none |
//! | `LICENSE_REMINDER_CHANNEL` | `SLACK_DEFAULT_CHANNEL` | Slack channel for reminder warnings |
//! | `WEBHOOK_ALLOW_PRIVATE` | `false` | let webhooks target any address; off, only global unicast addresses |
//! | `EVENTS_RETENTION` | `365d` | how long audit events are kept (`30d`, `12h`, `90s`, ... or `off` for ever); pruned hourly |
//! | `MESSAGE_RETENTION` | `90d` | how long finished emails and Slack messages are kept, with their bodies and history (never one still queued or in flight); `off` for ever |
//! | `WEBHOOK_DELIVERY_RETENTION` | `30d` | how long webhook delivery records are kept; `off` for ever |
//! | `JOB_LEASE_SECS` | `60` | how long a claimed job is held without a heartbeat before another replica takes it |
//! | `SLACK_CLIENT_ID`, `ALGORITHM` | | the original service's; unused here, and said so once at start |

use std::path::PathBuf;

pub mod aws;
pub mod aws_client;
pub mod bridge;
pub mod check;
pub mod commands;
pub mod database;
pub mod licenses;
pub mod mail;
pub mod retention;
pub mod secrets;
pub mod server;
pub mod services;
pub mod slack;
pub mod storage;

pub use self::aws::AwsCredentials;
pub use database::DatabaseConfig;
pub use licenses::LicenseConfig;
pub use mail::{DEV_SENDER, MailConfig};
pub use retention::RetentionConfig;
pub use secrets::{SecretSource, SecretsConfig};
pub use server::{LogFormat, ServerConfig};
pub use slack::SlackConfig;
pub use storage::StorageConfig;

/// A configuration value that cannot be used; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {var}: {message}")]
pub struct ConfigError {
    /// The offending variable.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn bad(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// A variable's value, trimmed; `None` when unset or blank.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// The gateway's typed, validated configuration, by section.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder for embedded data (`DATA_DIR`): the SQLite database, the generated secret,
    /// the local storage folder.
    pub data_dir: PathBuf,
    /// Listening, logging, limits and the job worker.
    pub server: ServerConfig,
    /// The database and its pool.
    pub database: DatabaseConfig,
    /// `SECRET_KEY` and the earlier secrets.
    pub secrets: SecretsConfig,
    /// AWS's credentials (SES, and S3 unless it has keys of its own).
    pub aws: AwsCredentials,
    /// Storage and shared documents.
    pub storage: StorageConfig,
    /// Email.
    pub mail: MailConfig,
    /// Slack.
    pub slack: SlackConfig,
    /// Licences.
    pub licenses: LicenseConfig,
    /// Rules, webhooks and reminders.
    pub bridge: ::bridge::BridgeSettings,
    /// How long events, messages and webhook deliveries are kept.
    pub retention: RetentionConfig,
    /// The original service's variables that are set but mean nothing here, and why.
    pub unused_variables: Vec<(&'static str, &'static str)>,
}

/// The original service's variables that Event Bridge reads only to say they are unused.
const UNUSED: &[(&str, &str)] = &[
    (
        "SLACK_CLIENT_ID",
        "Event Bridge posts with the bot token alone (SLACK_BOT_TOKEN); no OAuth installation flow uses the client id",
    ),
    (
        "ALGORITHM",
        "API keys and licence keys are stored as HMAC-SHA256 digests keyed by SECRET_KEY; no password hashing algorithm is chosen",
    ),
];

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is an error worth reporting.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(bad(".env", e.to_string())),
        }
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds the configuration from any variable lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let get: &Lookup<'_> = &get;
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let server = ServerConfig::parse(get)?;
        let database = DatabaseConfig::parse(get, &data_dir)?;
        let backend = database.backend();
        let secrets = SecretsConfig::parse(get, backend, &data_dir)?;
        let licenses = LicenseConfig::parse(get)?;
        let slack = SlackConfig::parse(get, backend)?;
        let aws = aws::parse(get)?;
        let mail = MailConfig::parse(get, backend, &aws)?;
        let storage = StorageConfig::parse(get, backend, &data_dir, &aws)?;
        let bridge = bridge::parse(get)?;
        let retention = RetentionConfig::parse(get)?;
        Ok(Config {
            data_dir,
            server,
            database,
            secrets,
            aws,
            storage,
            mail,
            slack,
            licenses,
            bridge,
            retention,
            unused_variables: UNUSED.iter().filter(|(var, _)| get(var).is_some()).copied().collect(),
        })
    }
}

fn parse_num<T: std::str::FromStr>(get: &Lookup<'_>, var: &'static str, default: T) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| bad(var, format!("`{v}` is not a valid number"))),
    }
}

fn parse_bool(get: &Lookup<'_>, var: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(var).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(bad(var, format!("`{other}`: use true or false"))),
    }
}

/// `n`, refused when it is 0.
fn positive<T: PartialEq + From<u8>>(var: &'static str, n: T) -> Result<T, ConfigError> {
    if n == T::from(0) {
        Err(bad(var, "must be at least 1"))
    } else {
        Ok(n)
    }
}

/// A comma-separated list, blanks dropped.
fn list(get: &Lookup<'_>, var: &str) -> Vec<String> {
    get(var)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// An `http://` or `https://` URL, when set.
fn http_url(get: &Lookup<'_>, var: &'static str) -> Result<Option<String>, ConfigError> {
    match get(var) {
        Some(e) if !url::Url::parse(&e).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) => {
            Err(bad(var, format!("`{e}` is not an http(s) URL")))
        }
        other => Ok(other),
    }
}
