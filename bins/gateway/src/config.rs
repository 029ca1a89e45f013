//! Configuration from the environment (and an optional `.env`), using the original
//! service's variable names where they exist. An empty value counts as unset, so an
//! original `.env` with blank lines keeps working.
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
//! | `JOB_LEASE_SECS` | `60` | how long a claimed job is held without a heartbeat before another replica takes it |
//! | `SLACK_CLIENT_ID`, `ALGORITHM` | | the original service's; unused here, and said so once at start |

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{SecretBox, SecretString};
use shared_db::{Backend, DatabaseUrl, PoolOptions};

use crate::aws::{AwsCredentials, StaticKeys};

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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured by level in a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the API key secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// `SECRET_KEY` was set.
    Configured(SecretString),
    /// Not set: generate one and keep it in this file (embedded default only).
    GeneratedFile(PathBuf),
}

/// The gateway's typed, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub host: IpAddr,
    /// Listen port (0 picks a free one).
    pub port: u16,
    /// Public base URL, when configured (`http://localhost:<bound port>` otherwise).
    pub app_url: Option<String>,
    /// Folder for embedded data.
    pub data_dir: PathBuf,
    /// The database.
    pub database_url: DatabaseUrl,
    /// True when no database was configured (SQLite in `data_dir`).
    pub database_is_default: bool,
    /// Pool sizing.
    pub pool: PoolOptions,
    /// Apply migrations at start-up.
    pub migrate_on_start: bool,
    /// The API key secret.
    pub secret: SecretSource,
    /// Earlier secrets still accepted (`SECRET_KEY_PREVIOUS`).
    pub secret_previous: Vec<SecretString>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// JSON body limit in bytes.
    pub max_json_body: usize,
    /// Actix worker threads.
    pub workers: usize,
    /// Open connections the server holds at most (more wait in the listen backlog).
    pub max_connections: usize,
    /// Grace period on shutdown.
    pub shutdown_timeout: Duration,
    /// A request body idle this long is cut off.
    pub body_idle_timeout: Duration,
    /// The whole body of a request read before authentication must arrive within this.
    pub public_body_timeout: Duration,
    /// Open connections one (untrusted) peer address may hold.
    pub max_connections_per_address: usize,
    /// PKCS#8 DER of the configured licence signing key, if any.
    pub license_signing_key: Option<SecretBox<[u8]>>,
    /// Licence-holder calls per minute per client address.
    pub license_rate_per_address: u32,
    /// Licence-holder calls per minute per licence key.
    pub license_rate_per_key: u32,
    /// Failed API-key authentications per minute per address.
    pub auth_failures_per_minute: u32,
    /// How Slack messages leave (`SLACK_TRANSPORT`).
    pub slack_transport: slack_notify::transport::SlackMode,
    /// Slack bot token (set when the transport is `slack`).
    pub slack_bot_token: Option<SecretString>,
    /// Slack Web API base URL.
    pub slack_api_url: String,
    /// Channel for messages that name none.
    pub slack_default_channel: Option<String>,
    /// Messages per second per channel.
    pub slack_messages_per_second: u32,
    /// Environment label for messages that name none.
    pub app_env: Option<String>,
    /// Jobs run at once.
    pub worker_concurrency: usize,
    /// The local storage backend's folder.
    pub blob_dir: PathBuf,
    /// Storage namespaces.
    pub blob_namespaces: Vec<blob_store::namespace::Namespace>,
    /// The S3 backend, when `S3_BUCKET` is set.
    pub s3: Option<blob_store::S3Config>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Origins whose pages may call the API (`CORS_ALLOWED_ORIGINS`).
    pub cors_allowed_origins: crate::cors::AllowedOrigins,
    /// Largest shared document in bytes.
    pub max_document_bytes: usize,
    /// Email.
    pub mail: MailConfig,
    /// AWS's credentials (SES, and S3 unless it has keys of its own).
    pub aws: AwsCredentials,
    /// The credentials S3 uses, when `S3_BUCKET` is set.
    pub s3_credentials: Option<AwsCredentials>,
    /// The original service's variables that are set but mean nothing here, and why.
    pub unused_variables: Vec<(&'static str, &'static str)>,
    /// How long a claimed job is held without a heartbeat.
    pub job_lease: Duration,
    /// Rules, webhooks and reminders.
    pub bridge: bridge::BridgeSettings,
}

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

/// Static keys from two variables, both or neither.
fn key_pair(
    get: &impl Fn(&str) -> Option<String>,
    id_var: &'static str,
    secret_var: &'static str,
    token_var: Option<&'static str>,
    from: &'static str,
) -> Result<Option<StaticKeys>, ConfigError> {
    match (get(id_var), get(secret_var)) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(bad(secret_var, format!("required with {id_var}"))),
        (None, Some(_)) => Err(bad(id_var, format!("required with {secret_var}"))),
        (Some(id), Some(secret)) => Ok(Some(StaticKeys {
            access_key_id: id,
            secret_access_key: SecretString::from(secret),
            session_token: token_var.and_then(get).map(SecretString::from),
            from,
        })),
    }
}

/// AWS's credentials: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (with
/// `AWS_SESSION_TOKEN`) when set, otherwise the standard chain.
fn aws_credentials(get: &impl Fn(&str) -> Option<String>, region: Option<&str>) -> Result<AwsCredentials, ConfigError> {
    Ok(
        match key_pair(
            get,
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            Some("AWS_SESSION_TOKEN"),
            "environment (AWS_ACCESS_KEY_ID)",
        )? {
            Some(keys) => AwsCredentials::fixed(&keys),
            None => AwsCredentials::chain(region),
        },
    )
}

/// `MAIL_TRANSPORT`; unset: SES when `SES_SENDER_EMAIL` and `AWS_SES_REGION` are set,
/// otherwise the dev mailbox on SQLite (zero-configuration start) and nothing on MySQL.
fn mail_transport(
    get: &impl Fn(&str) -> Option<String>,
    backend: Backend,
) -> Result<mailer::transport::MailMode, ConfigError> {
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

/// `SLACK_TRANSPORT`; unset: Slack when `SLACK_BOT_TOKEN` is set, otherwise the dev sink on
/// SQLite (zero-configuration start) and nothing on MySQL.
fn slack_transport(
    get: &impl Fn(&str) -> Option<String>,
    backend: Backend,
) -> Result<slack_notify::transport::SlackMode, ConfigError> {
    use slack_notify::transport::SlackMode;
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

/// The sender of messages without `from` in the dev mailbox when `SES_SENDER_EMAIL` is unset.
pub const DEV_SENDER: &str = "Event Bridge Dev <noreply@event-bridge.localhost>";

fn mail_config(
    get: &impl Fn(&str) -> Option<String>,
    backend: Backend,
    aws: &AwsCredentials,
) -> Result<MailConfig, ConfigError> {
    let default_from = get("SES_SENDER_EMAIL");
    if let Some(f) = &default_from {
        mailer::address::Mailbox::parse(f).map_err(|m| bad("SES_SENDER_EMAIL", m))?;
    }
    let region = get("AWS_SES_REGION");
    let transport = mail_transport(get, backend)?;
    let ses = if transport == mailer::transport::MailMode::Ses {
        let endpoint = get("AWS_ENDPOINT_URL_SES");
        if let Some(e) = &endpoint
            && !url::Url::parse(e).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(bad("AWS_ENDPOINT_URL_SES", format!("`{e}` is not an http(s) URL")));
        }
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
    let list = |var: &str| -> Vec<String> {
        get(var)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut sns = mailer::sns::SnsConfig::default();
    let hosts = list("SNS_CERT_HOSTS");
    if !hosts.is_empty() {
        sns.cert_hosts = hosts;
    }
    sns.topics = list("SNS_TOPIC_ARNS");
    sns.allow_http = parse_bool(get, "SNS_ALLOW_HTTP_CERTS", false)?;
    sns.max_age = Duration::from_secs(parse_num::<u64>(get, "SNS_MAX_AGE_SECS", 3600)?);
    // The dev mailbox sends nothing, so a sender nobody configured harms no one: a first
    // message needs no `from`.
    let default_from = match (default_from, transport) {
        (None, mailer::transport::MailMode::Dev) => Some(DEV_SENDER.to_owned()),
        (from, _) => from,
    };
    Ok(MailConfig {
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

        let host = match get("APP_HOST") {
            Some(v) => v
                .parse()
                .map_err(|_| bad("APP_HOST", format!("`{v}` is not an IP address")))?,
            None => IpAddr::from([0, 0, 0, 0]),
        };
        let port = parse_num::<u16>(&get, "APP_PORT", 8002)?;
        let app_url = get("APP_URL");
        if let Some(u) = &app_url {
            url::Url::parse(u).map_err(|e| bad("APP_URL", format!("not a URL: {e}")))?;
        }
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "./data".into()));

        let (database_url, database_is_default) = if let Some(raw) = get("DATABASE_URL") {
            (
                DatabaseUrl::parse(&raw).map_err(|e| bad("DATABASE_URL", e.to_string()))?,
                false,
            )
        } else if let Some(host) = get("DB_HOST") {
            let port = parse_num::<u16>(&get, "DB_PORT", 3306)?;
            let name = get("DB_NAME").ok_or_else(|| bad("DB_NAME", "required when DB_HOST is set"))?;
            let user = get("DB_USER_ID").ok_or_else(|| bad("DB_USER_ID", "required when DB_HOST is set"))?;
            let pass = get("DB_PASS").unwrap_or_default();
            (
                DatabaseUrl::mysql_from_parts(&host, port, &name, &user, &pass, false)
                    .map_err(|e| bad("DB_HOST", e.to_string()))?,
                false,
            )
        } else {
            let path = data_dir.join("event-bridge.db");
            (DatabaseUrl::sqlite(path.to_string_lossy().into_owned()), true)
        };
        // TLS applies to DATABASE_URL as much as to the DB_* parts (the original `.env`
        // builds DATABASE_URL from them and sets DB_IS_SSL beside it).
        let ssl = parse_bool(&get, "DB_IS_SSL", false)?;
        let ssl_ca = get("DB_SSL_CA");
        let database_url = if ssl || ssl_ca.is_some() {
            if database_url.backend() != Backend::Mysql {
                return Err(bad("DB_IS_SSL", "TLS applies to MySQL; the database is SQLite"));
            }
            if ssl {
                // DB_IS_SSL asks for full verification: a weaker ssl-mode in the URL does not lower it.
                database_url.with_verified_tls(ssl_ca.as_deref())
            } else {
                database_url.with_tls(shared_db::SslMode::VerifyIdentity, ssl_ca.as_deref())
            }
            .map_err(|e| bad("DB_SSL_CA", e.to_string()))?
        } else {
            database_url
        };

        let pool = PoolOptions {
            max_size: parse_num::<usize>(&get, "DB_POOL_SIZE", 10)?,
            connect_timeout: Duration::from_secs(parse_num::<u64>(&get, "DB_CONNECT_TIMEOUT_SECS", 5)?),
            acquire_timeout: Duration::from_secs(parse_num::<u64>(&get, "DB_ACQUIRE_TIMEOUT_SECS", 5)?),
        };
        if pool.max_size == 0 {
            return Err(bad("DB_POOL_SIZE", "must be at least 1"));
        }
        let migrate_on_start = parse_bool(&get, "DB_MIGRATE_ON_START", true)?;

        let secret = match get("SECRET_KEY") {
            Some(key) if key.len() < 16 => {
                return Err(bad(
                    "SECRET_KEY",
                    "must be at least 16 characters (32 or more recommended)",
                ));
            }
            Some(key) => SecretSource::Configured(SecretString::from(key)),
            None if database_url.backend() == Backend::Mysql => {
                return Err(bad(
                    "SECRET_KEY",
                    "required when the database is MySQL: every replica must share it, so it cannot be generated",
                ));
            }
            None => SecretSource::GeneratedFile(data_dir.join("secret_key")),
        };
        let secret_previous = get("SECRET_KEY_PREVIOUS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        if s.len() < 16 {
                            Err(bad("SECRET_KEY_PREVIOUS", "each secret must be at least 16 characters"))
                        } else {
                            Ok(SecretString::from(s.to_owned()))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();

        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") | Some("pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(bad("LOG_FORMAT", format!("`{other}`: use text or json"))),
        };
        let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_level).map_err(|e| bad("LOG_LEVEL", e.to_string()))?;

        let max_json_body = parse_num::<usize>(&get, "MAX_JSON_BODY_BYTES", 1024 * 1024)?;
        let default_workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = parse_num::<usize>(&get, "HTTP_WORKERS", default_workers)?.max(1);
        let shutdown_timeout = match parse_num::<u64>(&get, "SHUTDOWN_TIMEOUT_SECS", 30)? {
            0 => {
                return Err(bad(
                    "SHUTDOWN_TIMEOUT_SECS",
                    "must be at least 1 (jobs and requests in flight need time to finish)",
                ));
            }
            n => Duration::from_secs(n),
        };
        let license_signing_key = get("LICENSE_SIGNING_KEY").map(|v| parse_private_key(&v)).transpose()?;
        let license_rate_per_address = parse_num::<u32>(&get, "LICENSE_RATE_LIMIT_PER_MINUTE", 600)?;
        if license_rate_per_address == 0 {
            return Err(bad("LICENSE_RATE_LIMIT_PER_MINUTE", "must be at least 1"));
        }
        let license_rate_per_key = parse_num::<u32>(&get, "LICENSE_KEY_RATE_LIMIT_PER_MINUTE", 120)?;
        if license_rate_per_key == 0 {
            return Err(bad("LICENSE_KEY_RATE_LIMIT_PER_MINUTE", "must be at least 1"));
        }
        let slack_transport = slack_transport(&get, database_url.backend())?;
        // One provider for SES and S3 (one cache of temporary credentials). Building
        // the chain reads nothing yet: it is asked only when SES or S3 is used.
        let aws_region = get("AWS_SES_REGION").or_else(|| get("S3_REGION"));
        let aws = aws_credentials(&get, aws_region.as_deref())?;
        let mail = mail_config(&get, database_url.backend(), &aws)?;
        let slack_bot_token = get("SLACK_BOT_TOKEN")
            .filter(|_| slack_transport == slack_notify::transport::SlackMode::Slack)
            .map(SecretString::from);
        let slack_api_url = get("SLACK_API_URL").unwrap_or_else(|| "https://slack.com/api".into());
        match url::Url::parse(&slack_api_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err(bad("SLACK_API_URL", format!("`{slack_api_url}` is not an http(s) URL"))),
        }
        let slack_default_channel = get("SLACK_DEFAULT_CHANNEL");
        let slack_messages_per_second = parse_num::<u32>(&get, "SLACK_MESSAGES_PER_SECOND", 1)?;
        if slack_messages_per_second == 0 {
            return Err(bad("SLACK_MESSAGES_PER_SECOND", "must be at least 1"));
        }
        let app_env = get("APP_ENV");
        let worker_concurrency = parse_num::<usize>(&get, "WORKER_CONCURRENCY", 8)?;
        if worker_concurrency == 0 {
            return Err(bad("WORKER_CONCURRENCY", "must be at least 1"));
        }
        let blob_dir = get("BLOB_DIR").map_or_else(|| data_dir.join("blobs"), PathBuf::from);
        let blob_namespaces = match (get("BLOB_NAMESPACES"), get("BLOB_NAMESPACES_FILE")) {
            (Some(json), _) => blob_store::namespace::parse(&json).map_err(|m| bad("BLOB_NAMESPACES", m))?,
            (None, Some(path)) => {
                let json = std::fs::read_to_string(&path)
                    .map_err(|e| bad("BLOB_NAMESPACES_FILE", format!("cannot read {path}: {e}")))?;
                blob_store::namespace::parse(&json).map_err(|m| bad("BLOB_NAMESPACES_FILE", m))?
            }
            (None, None) => blob_store::namespace::defaults(),
        };
        let max_document_bytes = parse_num::<usize>(&get, "MAX_DOCUMENT_BYTES", 1024 * 1024)?;
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            Some(v) => crate::net::parse_trusted(&v).map_err(|m| bad("TRUSTED_PROXIES", m))?,
            None => Vec::new(),
        };
        let cors_allowed_origins = match get("CORS_ALLOWED_ORIGINS") {
            Some(v) => crate::cors::parse_origins(&v).map_err(|m| bad("CORS_ALLOWED_ORIGINS", m))?,
            None => crate::cors::AllowedOrigins::None,
        };
        let mut s3_credentials = None;
        let s3 = match get("S3_BUCKET") {
            None => None,
            Some(bucket) => {
                let endpoint = get("AWS_ENDPOINT_URL_S3");
                if let Some(e) = &endpoint
                    && !url::Url::parse(e).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
                {
                    return Err(bad("AWS_ENDPOINT_URL_S3", format!("`{e}` is not an http(s) URL")));
                }
                let part_mb = parse_num::<usize>(&get, "S3_PART_SIZE_MB", 8)?;
                if !(5..=5120).contains(&part_mb) {
                    return Err(bad("S3_PART_SIZE_MB", "must be 5 to 5120"));
                }
                Some(blob_store::S3Config {
                    bucket,
                    region: get("S3_REGION")
                        .or_else(|| get("AWS_SES_REGION"))
                        .unwrap_or_else(|| "us-east-1".into()),
                    endpoint,
                    force_path_style: parse_bool(&get, "S3_FORCE_PATH_STYLE", false)?,
                    credentials: match key_pair(
                        &get,
                        "S3_ACCESS_KEY_ID",
                        "S3_SECRET_ACCESS_KEY",
                        None,
                        "S3_ACCESS_KEY_ID",
                    )? {
                        Some(keys) => {
                            let own = AwsCredentials::fixed(&keys);
                            s3_credentials = Some(own.clone());
                            own.provider()
                        }
                        None => {
                            s3_credentials = Some(aws.clone());
                            aws.provider()
                        }
                    },
                    part_size: part_mb * 1024 * 1024,
                    timeout: Duration::from_secs(parse_num::<u64>(&get, "S3_TIMEOUT_SECS", 30)?.max(1)),
                })
            }
        };

        // Replicas on MySQL share the database, so they must share the files too: a
        // folder of one replica's own would hold objects the others cannot serve.
        if database_url.backend() == Backend::Mysql && s3.is_none() && get("BLOB_DIR").is_none() {
            return Err(bad(
                "S3_BUCKET",
                "the database is MySQL, so storage must be shared by every replica too: set S3_BUCKET \
                 (Amazon S3 or a compatible store), or BLOB_DIR to a folder every replica mounts",
            ));
        }

        Ok(Config {
            host,
            port,
            app_url,
            data_dir,
            database_url,
            database_is_default,
            pool,
            migrate_on_start,
            secret,
            secret_previous,
            log_format,
            log_level,
            max_json_body,
            workers,
            max_connections: parse_num::<usize>(&get, "MAX_CONNECTIONS", 4096)?.max(workers),
            shutdown_timeout,
            body_idle_timeout: Duration::from_secs(parse_num::<u64>(&get, "BODY_IDLE_TIMEOUT_SECS", 30)?.max(1)),
            public_body_timeout: Duration::from_secs(parse_num::<u64>(&get, "PUBLIC_BODY_TIMEOUT_SECS", 10)?.max(1)),
            max_connections_per_address: match parse_num::<usize>(&get, "MAX_CONNECTIONS_PER_ADDRESS", 256)? {
                0 => return Err(bad("MAX_CONNECTIONS_PER_ADDRESS", "must be at least 1")),
                n => n,
            },
            license_signing_key,
            license_rate_per_address,
            license_rate_per_key,
            auth_failures_per_minute: match parse_num::<u32>(&get, "AUTH_FAILURES_PER_MINUTE", 60)? {
                0 => return Err(bad("AUTH_FAILURES_PER_MINUTE", "must be at least 1")),
                n => n,
            },
            slack_transport,
            slack_bot_token,
            slack_api_url,
            slack_default_channel,
            slack_messages_per_second,
            app_env,
            worker_concurrency,
            blob_dir,
            blob_namespaces,
            s3,
            trusted_proxies,
            cors_allowed_origins,
            max_document_bytes,
            mail,
            aws,
            s3_credentials,
            unused_variables: UNUSED.iter().filter(|(var, _)| get(var).is_some()).copied().collect(),
            job_lease: Duration::from_secs(parse_num::<u64>(&get, "JOB_LEASE_SECS", 60)?.max(3)),
            bridge: bridge::BridgeSettings {
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
                allow_internal_webhooks: parse_bool(&get, "WEBHOOK_ALLOW_PRIVATE", false)?,
                ..bridge::BridgeSettings::default()
            },
        })
    }
}

/// A PKCS#8 private key given as PEM (`-----BEGIN PRIVATE KEY-----`) or bare base64.
fn parse_private_key(value: &str) -> Result<SecretBox<[u8]>, ConfigError> {
    // `\n` escapes allow a PEM on one line of a .env file.
    let body: String = value
        .replace("\\n", "\n")
        .lines()
        .filter(|l| !l.trim_start().starts_with("-----"))
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = data_encoding::BASE64
        .decode(body.as_bytes())
        .or_else(|_| data_encoding::BASE64URL_NOPAD.decode(body.as_bytes()))
        .map_err(|_| bad("LICENSE_SIGNING_KEY", "not PEM or base64 PKCS#8"))?;
    if license_core::cert::Signer::from_pkcs8(&der).is_err() {
        return Err(bad("LICENSE_SIGNING_KEY", "not a PKCS#8 Ed25519 private key"));
    }
    Ok(SecretBox::new(der.into_boxed_slice()))
}

fn parse_num<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| bad(var, format!("`{v}` is not a valid number"))),
    }
}

fn parse_bool(get: &impl Fn(&str) -> Option<String>, var: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(var).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(bad(var, format!("`{other}`: use true or false"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    /// Every variable the configuration reads is in the README's configuration section.
    #[test]
    fn every_variable_read_is_documented_in_the_readme() {
        let source = include_str!("config.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap()];
        let readme = include_str!("../../../README.md");
        let start = readme.find("## Configuration").unwrap();
        let end = readme[start..].find("## API overview").unwrap() + start;
        let documented = &readme[start..end];
        let mut read: Vec<&str> = code
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| {
                s.len() > 3
                    && s.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
            .collect();
        read.sort_unstable();
        read.dedup();
        assert!(read.len() > 50, "the scan finds the variables: {read:?}");
        let missing: Vec<&&str> = read
            .iter()
            .filter(|v| !documented.contains(&format!("`{v}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "read but not in the README's configuration section: {missing:?}"
        );
    }

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_configured_means_sqlite_in_data_with_a_generated_secret() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 8002);
        assert_eq!(c.app_url, None);
        assert!(c.database_is_default);
        assert_eq!(c.database_url.backend(), Backend::Sqlite);
        assert_eq!(c.database_url.expose_target(), "./data/event-bridge.db");
        assert!(matches!(c.secret, SecretSource::GeneratedFile(ref p) if p.ends_with("secret_key")));
        assert!(c.migrate_on_start);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn blank_values_from_the_original_env_count_as_unset() {
        let c = config(&[("APP_PORT", ""), ("DB_HOST", " "), ("SECRET_KEY", "")]).unwrap();
        assert_eq!(c.port, 8002);
        assert!(c.database_is_default);
    }

    #[test]
    fn mysql_from_the_original_variables() {
        let c = config(&[
            ("DB_HOST", "db.internal"),
            ("DB_PORT", "3307"),
            ("DB_NAME", "event_bridge"),
            ("DB_USER_ID", "bridge"),
            ("DB_PASS", "pa:ss"),
            ("DB_IS_SSL", "true"),
            ("SECRET_KEY", "0123456789abcdef0123456789abcdef"),
            ("BLOB_DIR", "/srv/shared/blobs"),
        ])
        .unwrap();
        assert_eq!(
            c.database_url.expose_target(),
            "mysql://bridge:pa%3Ass@db.internal:3307/event_bridge"
        );
        assert_eq!(
            c.database_url.tls().map(shared_db::MysqlTls::mode),
            Some(shared_db::SslMode::VerifyIdentity)
        );
        assert!(
            !format!("{c:?}").contains("pa%3Ass"),
            "Debug must not show the password"
        );
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "Debug must not show the secret"
        );
        match c.secret {
            SecretSource::Configured(s) => assert_eq!(s.expose_secret().len(), 32),
            SecretSource::GeneratedFile(_) => panic!("configured secret expected"),
        }
    }

    #[test]
    fn database_url_wins_and_accepts_the_aiomysql_form() {
        let c = config(&[
            ("DATABASE_URL", "mysql+aiomysql://root:@127.0.0.1:3306/test"),
            ("DB_HOST", "ignored"),
            ("SECRET_KEY", "0123456789abcdef"),
            ("BLOB_DIR", "/srv/shared/blobs"),
        ])
        .unwrap();
        assert_eq!(c.database_url.backend(), Backend::Mysql);
        assert_eq!(c.database_url.expose_target(), "mysql://root@127.0.0.1:3306/test");
        assert!(c.database_url.tls().is_none());
    }

    #[test]
    fn the_original_unused_variables_are_recognised() {
        let c = config(&[("SLACK_CLIENT_ID", "1234.5678"), ("ALGORITHM", "pbkdf2_sha256")]).unwrap();
        let names: Vec<&str> = c.unused_variables.iter().map(|(v, _)| *v).collect();
        assert_eq!(names, ["SLACK_CLIENT_ID", "ALGORITHM"]);
        assert!(config(&[]).unwrap().unused_variables.is_empty());
    }

    #[test]
    fn storage_on_mysql_is_shared_or_refused() {
        let mysql = [
            ("DATABASE_URL", "mysql://app:pw@db/eb"),
            ("SECRET_KEY", "0123456789abcdef"),
        ];
        let err = config(&mysql).unwrap_err();
        assert_eq!(err.var, "S3_BUCKET");
        assert!(err.to_string().contains("BLOB_DIR"), "{err}");
        let with = |extra: (&'static str, &'static str)| {
            let mut vars = mysql.to_vec();
            vars.push(extra);
            config(&vars)
        };
        assert_eq!(
            with(("BLOB_DIR", "/mnt/efs/blobs")).unwrap().blob_dir,
            PathBuf::from("/mnt/efs/blobs")
        );
        assert!(with(("S3_BUCKET", "shared")).unwrap().s3.is_some());
        // The embedded default keeps its own folder.
        assert_eq!(config(&[]).unwrap().blob_dir, PathBuf::from("./data/blobs"));
    }

    #[test]
    fn db_is_ssl_applies_to_the_original_database_url() {
        // The original .env (DATABASE_URL in the SQLAlchemy form, DB_IS_SSL beside it), and
        // a URL whose weaker mode DB_IS_SSL does not lower: both verify fully.
        for url in [
            "mysql+aiomysql://app:pw@db.example.com:3306/eb",
            "mysql://app:pw@10.0.0.5:3306/eb?ssl-mode=REQUIRED",
        ] {
            let c = config(&[
                ("DATABASE_URL", url),
                ("DB_IS_SSL", "true"),
                ("SECRET_KEY", "0123456789abcdef"),
                ("BLOB_DIR", "/srv/shared/blobs"),
            ])
            .unwrap();
            assert_eq!(
                c.database_url.tls().map(shared_db::MysqlTls::mode),
                Some(shared_db::SslMode::VerifyIdentity),
                "{url}"
            );
        }
        // A CA file that cannot be read names DB_SSL_CA; TLS on SQLite names DB_IS_SSL.
        let err = config(&[
            ("DATABASE_URL", "mysql://app:pw@db/eb"),
            ("DB_SSL_CA", "/no/such/rds-bundle.pem"),
            ("SECRET_KEY", "0123456789abcdef"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "DB_SSL_CA");
        assert!(err.to_string().contains("/no/such/rds-bundle.pem"), "{err}");
        assert_eq!(config(&[("DB_IS_SSL", "true")]).unwrap_err().var, "DB_IS_SSL");
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("APP_PORT", "eighty")], "APP_PORT"),
            (&[("APP_PORT", "70000")], "APP_PORT"),
            (&[("APP_HOST", "localhost:1")], "APP_HOST"),
            (&[("APP_URL", "not a url")], "APP_URL"),
            (&[("DATABASE_URL", "postgres://x/y")], "DATABASE_URL"),
            (&[("DATABASE_URL", "mysql://root@127.0.0.1/test")], "SECRET_KEY"),
            (&[("DB_HOST", "h"), ("DB_USER_ID", "u")], "DB_NAME"),
            (&[("DB_HOST", "h"), ("DB_NAME", "n")], "DB_USER_ID"),
            (
                &[
                    ("DB_HOST", "h"),
                    ("DB_NAME", "n"),
                    ("DB_USER_ID", "u"),
                    ("DB_IS_SSL", "maybe"),
                ],
                "DB_IS_SSL",
            ),
            (&[("SECRET_KEY", "short")], "SECRET_KEY"),
            (&[("LOG_FORMAT", "xml")], "LOG_FORMAT"),
            (&[("LOG_LEVEL", "info,[bad")], "LOG_LEVEL"),
            (&[("DB_POOL_SIZE", "0")], "DB_POOL_SIZE"),
            (&[("DB_ACQUIRE_TIMEOUT_SECS", "-1")], "DB_ACQUIRE_TIMEOUT_SECS"),
            (&[("DB_MIGRATE_ON_START", "sometimes")], "DB_MIGRATE_ON_START"),
            (
                &[("CORS_ALLOWED_ORIGINS", "https://app.example.com/")],
                "CORS_ALLOWED_ORIGINS",
            ),
            (&[("CORS_ALLOWED_ORIGINS", "*.example.com")], "CORS_ALLOWED_ORIGINS"),
        ];
        for (vars, var) in cases {
            let err = config(vars).unwrap_err();
            assert_eq!(err.var, *var, "{vars:?}");
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn s3_settings_and_their_secret_stay_out_of_debug() {
        let c = config(&[
            ("S3_BUCKET", "shared"),
            ("AWS_SES_REGION", "ap-northeast-2"),
            ("AWS_ENDPOINT_URL_S3", "http://minio:9000"),
            ("S3_FORCE_PATH_STYLE", "true"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"),
            ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN"),
            ("SES_SENDER_EMAIL", "noreply@example.com"),
        ])
        .unwrap();
        assert!(c.mail.ses.is_some());
        assert_eq!(c.aws.source(), Some("environment (AWS_ACCESS_KEY_ID)"));
        let s3 = c.s3.clone().unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.region.as_str(), s3.force_path_style),
            ("shared", "ap-northeast-2", true)
        );
        assert_eq!(s3.part_size, 8 * 1024 * 1024);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("wJalrXUtnFEMI") && !debug.contains("AKIAEXAMPLE") && !debug.contains("EXAMPLETOKEN"),
            "{debug}"
        );
        // S3's own keys for an S3-compatible store, while SES keeps AWS's chain.
        let c = config(&[
            ("S3_BUCKET", "shared"),
            ("S3_ACCESS_KEY_ID", "minio-user"),
            ("S3_SECRET_ACCESS_KEY", "minio-secret-123"),
        ])
        .unwrap();
        assert_eq!(
            c.s3_credentials.as_ref().and_then(|a| a.source()),
            Some("S3_ACCESS_KEY_ID")
        );
        assert_eq!(c.aws.source(), None, "the chain is asked only when used");
        assert!(!format!("{c:?}").contains("minio-secret-123"));
        let err = config(&[("S3_BUCKET", "shared"), ("S3_ACCESS_KEY_ID", "minio-user")]).unwrap_err();
        assert_eq!(err.var, "S3_SECRET_ACCESS_KEY");
    }

    #[test]
    fn a_signing_key_is_read_from_pem_or_base64() {
        // An OpenSSL-style PKCS#8 v1 Ed25519 key (RFC 8410 test vector).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let c = config(&[("LICENSE_SIGNING_KEY", pem)]).unwrap();
        let der = c.license_signing_key.unwrap();
        assert_eq!(der.expose_secret().len(), 48);
        let one_line = "-----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\\n-----END PRIVATE KEY-----";
        assert!(
            config(&[("LICENSE_SIGNING_KEY", one_line)])
                .unwrap()
                .license_signing_key
                .is_some()
        );
        let bare = "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC";
        assert!(
            config(&[("LICENSE_SIGNING_KEY", bare)])
                .unwrap()
                .license_signing_key
                .is_some()
        );
        assert!(!format!("{:?}", config(&[("LICENSE_SIGNING_KEY", bare)]).unwrap()).contains("MC4CAQ"));
    }

    #[test]
    fn transports_default_to_dev_on_sqlite_and_to_not_configured_on_mysql() {
        use mailer::transport::MailMode;
        use slack_notify::transport::SlackMode;
        let mysql = [
            ("DATABASE_URL", "mysql://root@127.0.0.1:3306/test"),
            ("SECRET_KEY", "0123456789abcdef"),
            ("BLOB_DIR", "/srv/shared/blobs"),
        ];
        let with = |extra: &[(&'static str, &'static str)], on_mysql: bool| {
            let mut vars: Vec<(&str, &str)> = extra.to_vec();
            if on_mysql {
                vars.extend(mysql);
            }
            config(&vars)
        };
        let modes = |c: &Config| (c.mail.transport, c.slack_transport);

        let c = with(&[], false).unwrap();
        assert_eq!(
            modes(&c),
            (MailMode::Dev, SlackMode::Dev),
            "zero configuration keeps working"
        );
        let c = with(&[], true).unwrap();
        assert_eq!(modes(&c), (MailMode::NotConfigured, SlackMode::NotConfigured));
        let c = with(&[("MAIL_TRANSPORT", "dev"), ("SLACK_TRANSPORT", "dev")], true).unwrap();
        assert_eq!(modes(&c), (MailMode::Dev, SlackMode::Dev));
        // A sender alone is not SES: still not configured on MySQL.
        let c = with(&[("SES_SENDER_EMAIL", "app@example.com")], true).unwrap();
        assert_eq!(c.mail.transport, MailMode::NotConfigured);
        let ses = [
            ("SES_SENDER_EMAIL", "app@example.com"),
            ("AWS_SES_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("SLACK_BOT_TOKEN", "xoxb-1"),
        ];
        for on_mysql in [false, true] {
            let c = with(&ses, on_mysql).unwrap();
            assert_eq!(modes(&c), (MailMode::Ses, SlackMode::Slack));
            assert!(c.slack_bot_token.is_some());
        }
        // The token is not used by the dev sink.
        let c = with(&[("SLACK_BOT_TOKEN", "xoxb-1"), ("SLACK_TRANSPORT", "dev")], true).unwrap();
        assert_eq!(c.slack_transport, SlackMode::Dev);
        assert!(c.slack_bot_token.is_none());

        let err = with(&[("SLACK_TRANSPORT", "slack")], false).unwrap_err();
        assert_eq!(err.var, "SLACK_BOT_TOKEN", "{err}");
        assert!(err.to_string().contains("SLACK_TRANSPORT"), "{err}");
        let err = with(&[("SLACK_TRANSPORT", "teams")], true).unwrap_err();
        assert_eq!(err.var, "SLACK_TRANSPORT");
        let err = with(&[("MAIL_TRANSPORT", "smtp")], true).unwrap_err();
        assert_eq!(err.var, "MAIL_TRANSPORT");
    }

    /// Every variable the module's table documents (the first cell's backticked names).
    fn documented_variables() -> Vec<&'static str> {
        include_str!("config.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | "))
            .filter_map(|row| row.split(" | ").next())
            .flat_map(|cell| cell.split('`').skip(1).step_by(2))
            .filter(|name| {
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .collect()
    }

    #[test]
    fn the_documented_variables_are_found() {
        let vars = documented_variables();
        assert!(vars.len() > 40, "{vars:?}");
        for v in [
            "APP_PORT",
            "DATABASE_URL",
            "S3_TIMEOUT_SECS",
            "MAX_CONNECTIONS",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(vars.contains(&v), "{v} in {vars:?}");
        }
    }

    proptest::proptest! {
        /// Any value of any documented variable (up to three at once) is taken or refused
        /// with an error naming a documented variable, never a panic.
        #[test]
        fn any_value_of_any_variable_is_taken_or_refused_by_name(
            picks in proptest::collection::vec((0usize..1000, "\\PC{0,40}|[0-9]{1,25}|-[0-9]{1,5}|(true|false|yes|no|on|off|1|0)"), 1..4)
        ) {
            let names = documented_variables();
            let vars: Vec<(&str, &str)> = picks.iter().map(|(i, v)| (names[i % names.len()], v.as_str())).collect();
            if let Err(e) = config(&vars) {
                proptest::prop_assert!(names.contains(&e.var), "{} is not documented", e.var);
                proptest::prop_assert!(!e.message.is_empty());
            }
        }

        #[test]
        fn any_port_value_is_parsed_or_refused_never_panics(v in "\\PC{0,12}") {
            match config(&[("APP_PORT", &v)]) {
                Ok(c) => proptest::prop_assert_eq!(Some(c.port), v.trim().parse::<u16>().ok().or(v.trim().is_empty().then_some(8002))),
                Err(e) => proptest::prop_assert_eq!(e.var, "APP_PORT"),
            }
        }
    }
}
