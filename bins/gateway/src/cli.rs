//! The command line: `gateway [serve]`, `gateway migrate`, `gateway api-keys ...`,
//! `gateway import licenses FILE`.
//! Every subcommand reads the same configuration as `serve`.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::Config;
use crate::config::commands::{self, ApiKeys, SigningKeys};
use crate::config::services::ensure_database_folder;
use crate::error::ApiError;
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
        return commands::healthcheck(&url);
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
        Command::Migrate { status } => commands::migrate(&config, status).await,
        Command::Backup { file } => commands::backup(&config, &file).await,
        Command::Prune => commands::prune(&config).await,
        Command::Import {
            what: ImportCommand::Licenses { file, dry_run },
        } => commands::import_licenses(&config, &file, dry_run).await,
        Command::ApiKeys(cmd) => {
            let what = match cmd {
                ApiKeysCommand::Create {
                    name,
                    scopes,
                    expires_at,
                } => ApiKeys::Create {
                    name,
                    scopes,
                    expires_at,
                },
                ApiKeysCommand::List { json } => ApiKeys::List { json },
                ApiKeysCommand::Revoke { id } => ApiKeys::Revoke(id),
            };
            // A refusal is worded as the API words it (`422 invalid_scopes: ...`).
            commands::api_keys(&config, what)
                .await
                .map_err(|e| match e.downcast::<access::AccessError>() {
                    Ok(refused) => anyhow::anyhow!("{}", ApiError::from(refused)),
                    Err(e) => e,
                })
        }
        Command::LicenseKeys(cmd) => {
            let what = match cmd {
                LicenseKeysCommand::List => SigningKeys::List,
                LicenseKeysCommand::Rotate => SigningKeys::Rotate,
                LicenseKeysCommand::Retire { kid } => SigningKeys::Retire(kid),
            };
            commands::signing_keys(&config, what).await
        }
    }
}
