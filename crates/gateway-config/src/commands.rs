//! The operator's commands that run beside (not inside) the server, on the same
//! configuration: migrations, backup, pruning, importing licences, the licence signing
//! keys, API keys and the container health check. The gateway's command line parses the
//! arguments and calls one of these.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use shared_db::migrations;

use crate::Config;
use crate::services::{key_ring, license_service, load_secret, open_database};

/// `migrate --status` lists the pending migrations; `migrate` applies them.
pub async fn migrate(config: &Config, status_only: bool) -> anyhow::Result<()> {
    if status_only {
        for version in migrations::pending(&config.database.url).await? {
            println!("{version}");
        }
        return Ok(());
    }
    let applied = migrations::run_pending(&config.database.url).await?;
    eprintln!("applied {} migration(s) to {}", applied.len(), config.database.url);
    for version in applied {
        println!("{version}");
    }
    Ok(())
}

/// Copies the embedded database to `file`, online.
pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<()> {
    let report = shared_db::backup::sqlite(&config.database.url, file).await?;
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

/// Prunes what is past its retention now.
pub async fn prune(config: &Config) -> anyhow::Result<()> {
    let pool = open_database(config).await?;
    let pruned = crate::retention::prune(&pool, &config.retention).await?;
    println!("pruned {pruned}");
    Ok(())
}

/// A plain HTTP/1.0 GET of `url` that must answer 200 (no TLS: the check runs beside
/// the server).
pub fn healthcheck(url: &str) -> anyhow::Result<()> {
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

/// Imports licences from the original service's export (`dry_run`: checks and reports,
/// writing nothing).
pub async fn import_licenses(config: &Config, file: &Path, dry_run: bool) -> anyhow::Result<()> {
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
        open_database(config).await?
    };
    let licenses = license_service(config, &pool, &secret)?;
    let report = licenses.import(&parsed, dry_run).await?;
    for (line, fields) in &report.differs {
        println!("line {line}: skipped (exists, differs): {}", fields.join(", "));
    }
    println!("{}", report.summary());
    Ok(())
}

/// What to do with the licence signing keys.
#[derive(Debug, Clone)]
pub enum SigningKeys {
    /// Print the published keys (the first signs).
    List,
    /// Generate a new signing key and print its kid.
    Rotate,
    /// Stop publishing key `kid`.
    Retire(String),
}

/// Lists, rotates or retires the licence signing keys.
pub async fn signing_keys(config: &Config, what: SigningKeys) -> anyhow::Result<()> {
    let secret = load_secret(&config.secrets.source)?;
    let pool = open_database(config).await?;
    let licenses = license_service(config, &pool, &secret)?;
    match what {
        SigningKeys::List => {
            for key in licenses.public_key().await?.keys {
                println!("{}\t{}", key.kid, key.public_key);
            }
        }
        SigningKeys::Rotate => {
            anyhow::ensure!(
                config.licenses.signing_key.is_none(),
                "LICENSE_SIGNING_KEY is set: rotate by changing it"
            );
            println!("{}", licenses.rotate_signing_key().await?);
        }
        SigningKeys::Retire(kid) => {
            licenses.retire_signing_key(&kid).await?;
            eprintln!("retired {kid}");
        }
    }
    Ok(())
}

/// What to do with API keys. A refusal by the key rules comes back as an
/// [`access::AccessError`] inside the `anyhow::Error`, for the caller to word.
#[derive(Debug, Clone)]
pub enum ApiKeys {
    /// Create a key and print it once, alone on stdout.
    Create {
        /// What the key is for.
        name: String,
        /// Its scopes.
        scopes: Vec<String>,
        /// When it stops working.
        expires_at: Option<DateTime<Utc>>,
    },
    /// Print every key (never a secret), as a table or as JSON.
    List {
        /// JSON instead of a table.
        json: bool,
    },
    /// Revoke key `id`.
    Revoke(String),
}

/// Creates, lists or revokes API keys.
pub async fn api_keys(config: &Config, what: ApiKeys) -> anyhow::Result<()> {
    let secret = load_secret(&config.secrets.source)?;
    let keys = access::AccessService::new(key_ring(config, &secret))
        .with_namespaces(config.storage.namespaces.iter().map(|n| n.name.clone()));
    let pool = open_database(config).await?;
    let mut conn = pool.get().await?;
    match what {
        ApiKeys::Create {
            name,
            scopes,
            expires_at,
        } => {
            let scopes: Vec<String> = scopes
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            let issued = keys.create(&mut conn, &name, &scopes, expires_at, None).await?;
            eprintln!(
                "created API key {} ({}); it is printed once:",
                issued.row.id, issued.row.scopes
            );
            println!("{}", issued.secret.expose_secret());
        }
        ApiKeys::List { json } => {
            // Every key, a page at a time.
            let mut rows: Vec<access::view::ApiKey> = Vec::new();
            let mut filter = access::KeyFilter {
                limit: Some(shared_db::paging::MAX_LIMIT),
                ..Default::default()
            };
            loop {
                let page = keys.list(&mut conn, &filter).await?;
                rows.extend(page.items.into_iter().map(access::view::ApiKey::from));
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
        ApiKeys::Revoke(id) => {
            let row = keys.revoke(&mut conn, &id, None).await?;
            eprintln!("revoked API key {} ({})", row.id, row.name);
        }
    }
    Ok(())
}
