//! The server section: where it listens, how it logs, and the limits it puts on
//! connections, bodies and time.

use std::net::IpAddr;
use std::time::Duration;

use super::{ConfigError, Lookup, bad, parse_num, positive};

pub use web_kit::telemetry::LogFormat;

/// Listening, logging, limits and the job worker.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address (`APP_HOST`).
    pub host: IpAddr,
    /// Listen port (0 picks a free one).
    pub port: u16,
    /// Public base URL, when configured (`http://localhost:<bound port>` otherwise).
    pub app_url: Option<String>,
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
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Origins whose pages may call the API (`CORS_ALLOWED_ORIGINS`).
    pub cors_allowed_origins: web_kit::cors::AllowedOrigins,
    /// Failed API-key authentications per minute per address.
    pub auth_failures_per_minute: u32,
    /// Jobs run at once.
    pub worker_concurrency: usize,
    /// How long a claimed job is held without a heartbeat.
    pub job_lease: Duration,
}

impl ServerConfig {
    /// Reads `APP_*`, `LOG_*`, the HTTP limits, `TRUSTED_PROXIES`, `CORS_ALLOWED_ORIGINS`
    /// and the worker's settings.
    pub fn parse(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        let host = match get("APP_HOST") {
            Some(v) => v
                .parse()
                .map_err(|_| bad("APP_HOST", format!("`{v}` is not an IP address")))?,
            None => IpAddr::from([0, 0, 0, 0]),
        };
        let port = parse_num::<u16>(get, "APP_PORT", 8002)?;
        let app_url = get("APP_URL");
        if let Some(u) = &app_url {
            url::Url::parse(u).map_err(|e| bad("APP_URL", format!("not a URL: {e}")))?;
        }
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") | Some("pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(bad("LOG_FORMAT", format!("`{other}`: use text or json"))),
        };
        let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_level).map_err(|e| bad("LOG_LEVEL", e.to_string()))?;

        let max_json_body = parse_num::<usize>(get, "MAX_JSON_BODY_BYTES", 1024 * 1024)?;
        let default_workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = parse_num::<usize>(get, "HTTP_WORKERS", default_workers)?.max(1);
        let shutdown_timeout = match parse_num::<u64>(get, "SHUTDOWN_TIMEOUT_SECS", 30)? {
            0 => {
                return Err(bad(
                    "SHUTDOWN_TIMEOUT_SECS",
                    "must be at least 1 (jobs and requests in flight need time to finish)",
                ));
            }
            n => Duration::from_secs(n),
        };
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            Some(v) => web_kit::net::parse_trusted(&v).map_err(|m| bad("TRUSTED_PROXIES", m))?,
            None => Vec::new(),
        };
        let cors_allowed_origins = match get("CORS_ALLOWED_ORIGINS") {
            Some(v) => web_kit::cors::parse_origins(&v).map_err(|m| bad("CORS_ALLOWED_ORIGINS", m))?,
            None => web_kit::cors::AllowedOrigins::None,
        };
        let secs = |var: &'static str, default: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(parse_num::<u64>(get, var, default)?.max(1)))
        };
        Ok(Self {
            host,
            port,
            app_url,
            log_format,
            log_level,
            max_json_body,
            workers,
            max_connections: parse_num::<usize>(get, "MAX_CONNECTIONS", 4096)?.max(workers),
            shutdown_timeout,
            body_idle_timeout: secs("BODY_IDLE_TIMEOUT_SECS", 30)?,
            public_body_timeout: secs("PUBLIC_BODY_TIMEOUT_SECS", 10)?,
            max_connections_per_address: positive(
                "MAX_CONNECTIONS_PER_ADDRESS",
                parse_num::<usize>(get, "MAX_CONNECTIONS_PER_ADDRESS", 256)?,
            )?,
            trusted_proxies,
            cors_allowed_origins,
            auth_failures_per_minute: positive(
                "AUTH_FAILURES_PER_MINUTE",
                parse_num::<u32>(get, "AUTH_FAILURES_PER_MINUTE", 60)?,
            )?,
            worker_concurrency: positive("WORKER_CONCURRENCY", parse_num::<usize>(get, "WORKER_CONCURRENCY", 8)?)?,
            job_lease: Duration::from_secs(parse_num::<u64>(get, "JOB_LEASE_SECS", 60)?.max(3)),
        })
    }
}
