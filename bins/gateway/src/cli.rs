//! The command line: `gateway [serve]`, `gateway migrate`, `gateway api-keys ...`,
//! `gateway import licenses FILE`.
//! Every subcommand reads the same configuration as `serve`.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use shared_db::migrations;

use crate::app::Application;
use crate::config::Config;
use crate::config::services::{ensure_database_folder, key_ring, license_service, load_secret, open_database};
use crate::error::ApiError;
use crate::http::api_keys::ApiKey;
use crate::telemetry;

/// Event Bridge gateway.
#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "Event Bridge: licences, email, Slack, storage and shared data in one service"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate {
        /// Only list the pending migrations.
        #[arg(long)]
        status: bool,
    },
    /// Manage API keys.
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// Manage the keys that sign licence certificates.
    #[command(subcommand)]
    LicenseKeys(LicenseKeysCommand),
    /// Try every configured service for real (database, AWS credentials, SES, Slack, S3)
    /// and print one line each; exit 0 only when every configured service works.
    Check,
    /// Copy the embedded SQLite database to FILE, online and consistent, while the gateway
    /// serves (never overwrites; checked before it is put in place). On MySQL/MariaDB it
    /// refuses and names mariadb-dump and mariadb-backup.
    Backup {
        /// Where the copy goes: a new file.
        file: std::path::PathBuf,
    },
    /// Remove, now, the events, finished messages and webhook deliveries older than their
    /// retention (EVENTS_RETENTION, MESSAGE_RETENTION, WEBHOOK_DELIVERY_RETENTION), and
    /// print how many of each.
    Prune,
    /// Import data from the original service.
    Import {
        #[command(subcommand)]
        what: ImportCommand,
    },
    /// Exit 0 when the running gateway answers /healthz (for container health checks).
    Healthcheck {
        /// What to ask; `http://127.0.0.1:<APP_PORT>/healthz` by default.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeysCommand {
    /// Create a key and print it, alone on stdout, once.
    Create {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, or '*' for all.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// When the key stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List keys (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Import licences with the keys the original service issued, from JSON Lines or CSV
    /// with a header row (see the README). Every line is checked first: one bad line
    /// imports nothing. Keys already imported are skipped, so importing again changes
    /// nothing.
    Licenses {
        /// The file: `.jsonl`/`.json` or `.csv` (else told apart by a leading `{`).
        file: std::path::PathBuf,
        /// Check the file and report what would be imported, writing nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LicenseKeysCommand {
    /// List the published keys (the first signs new certificates).
    List,
    /// Generate a new signing key; replicas sign with it after their next restart, and
    /// the old key stays published so its certificates keep verifying. Prints the new kid.
    Rotate,
    /// Stop publishing an earlier key (once every certificate it signed has expired).
    Retire {
        /// The key id.
        kid: String,
    },
}

/// Parses the command line and runs it.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.server.log_format, &config.server.log_level);
    match execute(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, config: Config) -> anyhow::Result<()> {
    if let Command::Healthcheck { url } = command {
        let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{}/healthz", config.server.port));
        return healthcheck(&url);
    }
    ensure_database_folder(&config)?;
    match command {
        Command::Healthcheck { .. } => Ok(()),
        Command::Check => {
            if crate::check::check(&config).await {
                Ok(())
            } else {
                Err(anyhow::anyhow!("some configured services do not work (see above)"))
            }
        }
        Command::Serve => Application::build(config).await?.run_until_stopped().await,
        Command::Migrate { status: true } => {
            for version in migrations::pending(&config.database.url).await? {
                println!("{version}");
            }
            Ok(())
        }
        Command::Migrate { status: false } => {
            let applied = migrations::run_pending(&config.database.url).await?;
            eprintln!("applied {} migration(s) to {}", applied.len(), config.database.url);
            for version in applied {
                println!("{version}");
            }
            Ok(())
        }
        Command::Backup { file } => {
            let report = shared_db::backup::sqlite(&config.database.url, &file).await?;
            println!(
                "backed up {} to {}: {} bytes, {} tables, in {} ms",
                config.database.url.redacted(),
                report.path.display(),
                report.bytes,
                report.tables,
                report.took.as_millis()
            );
            Ok(())
        }
        Command::Prune => {
            let pool = open_database(&config).await?;
            let pruned = crate::config::retention::prune(&pool, &config.retention).await?;
            println!("pruned {pruned}");
            Ok(())
        }
        Command::Import {
            what: ImportCommand::Licenses { file, dry_run },
        } => import_licenses(&file, dry_run, config).await,
        Command::ApiKeys(cmd) => api_keys_command(cmd, config).await,
        Command::LicenseKeys(cmd) => license_keys_command(cmd, config).await,
    }
}

/// A plain HTTP/1.0 GET (no TLS: the check runs beside the server).
fn healthcheck(url: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let url = url::Url::parse(url)?;
    anyhow::ensure!(url.scheme() == "http", "the health check speaks plain http");
    let host = url.host_str().unwrap_or("127.0.0.1");
    let addr = (host, url.port_or_known_default().unwrap_or(80));
    let timeout = std::time::Duration::from_secs(3);
    let target = std::net::ToSocketAddrs::to_socket_addrs(&addr)?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {host}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET {} HTTP/1.0\r\nHost: {host}\r\n\r\n", url.path())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    anyhow::ensure!(
        status_line.starts_with("HTTP/1.0 200") || status_line.starts_with("HTTP/1.1 200"),
        "unhealthy: {}",
        status_line.lines().next().unwrap_or("")
    );
    Ok(())
}

/// Errors printed for a refused import file (the rest are counted).
const IMPORT_ERRORS_SHOWN: usize = 50;

async fn import_licenses(file: &std::path::Path, dry_run: bool, config: Config) -> anyhow::Result<()> {
    use license_core::model::{ImportFile, ImportFormat};
    let shown = file.display();
    let bytes = std::fs::read(file).with_context(|| format!("reading {shown}"))?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{shown}: not UTF-8 text"))?;
    let parsed = match ImportFile::parse(&text, ImportFormat::detect(file, &text)) {
        Ok(parsed) => parsed,
        Err(errors) => {
            for e in errors.iter().take(IMPORT_ERRORS_SHOWN) {
                eprintln!("{shown}: {e}");
            }
            if errors.len() > IMPORT_ERRORS_SHOWN {
                eprintln!("{shown}: and {} more", errors.len() - IMPORT_ERRORS_SHOWN);
            }
            anyhow::bail!("{shown}: {} error(s); nothing imported", errors.len());
        }
    };
    if dry_run {
        let pending = migrations::pending(&config.database.url).await?;
        anyhow::ensure!(
            pending.is_empty(),
            "the database has {} pending migration(s): run `gateway migrate` first (a dry run writes nothing)",
            pending.len()
        );
    }
    let secret = load_secret(&config.secrets.source)?;
    let pool = if dry_run {
        shared_db::DbPool::new(config.database.url.clone(), config.database.pool.clone())?
    } else {
        open_database(&config).await?
    };
    let licenses = license_service(&config, &pool, &secret)?;
    let report = licenses.import(&parsed, dry_run).await?;
    for (line, fields) in &report.differs {
        println!("line {line}: skipped (exists, differs): {}", fields.join(", "));
    }
    println!("{}", report.summary());
    Ok(())
}

async fn license_keys_command(cmd: LicenseKeysCommand, config: Config) -> anyhow::Result<()> {
    let secret = load_secret(&config.secrets.source)?;
    let pool = open_database(&config).await?;
    let licenses = license_service(&config, &pool, &secret)?;
    match cmd {
        LicenseKeysCommand::List => {
            for key in licenses.public_key().await?.keys {
                println!("{}\t{}", key.kid, key.public_key);
            }
        }
        LicenseKeysCommand::Rotate => {
            anyhow::ensure!(
                config.licenses.signing_key.is_none(),
                "LICENSE_SIGNING_KEY is set: rotate by changing it"
            );
            println!("{}", licenses.rotate_signing_key().await?);
        }
        LicenseKeysCommand::Retire { kid } => {
            licenses.retire_signing_key(&kid).await?;
            eprintln!("retired {kid}");
        }
    }
    Ok(())
}

async fn api_keys_command(cmd: ApiKeysCommand, config: Config) -> anyhow::Result<()> {
    let secret = load_secret(&config.secrets.source)?;
    let keys = access::AccessService::new(key_ring(&config, &secret))
        .with_namespaces(config.storage.namespaces.iter().map(|n| n.name.clone()));
    let pool = open_database(&config).await?;
    let mut conn = pool.get().await?;
    match cmd {
        ApiKeysCommand::Create {
            name,
            scopes,
            expires_at,
        } => {
            let scopes: Vec<String> = scopes
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            let issued = keys
                .create(&mut conn, &name, &scopes, expires_at, None)
                .await
                .map_err(|e| anyhow::anyhow!("{}", ApiError::from(e)))?;
            eprintln!(
                "created API key {} ({}); it is printed once:",
                issued.row.id, issued.row.scopes
            );
            println!("{}", issued.secret.expose_secret());
        }
        ApiKeysCommand::List { json } => {
            // Every key, a page at a time.
            let mut rows: Vec<ApiKey> = Vec::new();
            let mut filter = access::KeyFilter {
                limit: Some(shared_db::paging::MAX_LIMIT),
                ..Default::default()
            };
            loop {
                let page = keys
                    .list(&mut conn, &filter)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                rows.extend(page.items.into_iter().map(ApiKey::from));
                match page.next_cursor {
                    Some(next) => filter.cursor = Some(next),
                    None => break,
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<36}  {:<10}  {:<8}  {:<24}  SCOPES",
                    "ID", "PREFIX", "STATUS", "NAME"
                );
                for k in rows {
                    let status = serde_json::to_value(k.status)?.as_str().unwrap_or_default().to_owned();
                    println!(
                        "{:<36}  {:<10}  {:<8}  {:<24}  {}",
                        k.id,
                        k.prefix,
                        status,
                        k.name,
                        k.scopes.join(",")
                    );
                }
            }
        }
        ApiKeysCommand::Revoke { id } => {
            let row = keys
                .revoke(&mut conn, &id, None)
                .await
                .map_err(|e| anyhow::anyhow!("{}", ApiError::from(e)))?;
            eprintln!("revoked API key {} ({})", row.id, row.name);
        }
    }
    Ok(())
}
