//! The database section: which database (`DATABASE_URL`, or the original `DB_*` parts, or
//! SQLite in `DATA_DIR`), TLS, the pool and migrations.

use std::path::Path;
use std::time::Duration;

use shared_db::{Backend, DatabaseUrl, PoolOptions};

use super::{ConfigError, Lookup, bad, parse_bool, parse_num};

/// The database and its pool.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// The database.
    pub url: DatabaseUrl,
    /// True when no database was configured (SQLite in `DATA_DIR`).
    pub is_default: bool,
    /// Pool sizing.
    pub pool: PoolOptions,
    /// Apply migrations at start-up.
    pub migrate_on_start: bool,
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL` or `DB_*`, `DB_IS_SSL`, `DB_SSL_CA`, the pool's settings and
    /// `DB_MIGRATE_ON_START`; without a database, SQLite in `data_dir`.
    pub fn parse(get: &Lookup<'_>, data_dir: &Path) -> Result<Self, ConfigError> {
        let (url, is_default) = if let Some(raw) = get("DATABASE_URL") {
            (
                DatabaseUrl::parse(&raw).map_err(|e| bad("DATABASE_URL", e.to_string()))?,
                false,
            )
        } else if let Some(host) = get("DB_HOST") {
            let port = parse_num::<u16>(get, "DB_PORT", 3306)?;
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
        let ssl = parse_bool(get, "DB_IS_SSL", false)?;
        let ssl_ca = get("DB_SSL_CA");
        let url = if ssl || ssl_ca.is_some() {
            if url.backend() != Backend::Mysql {
                return Err(bad("DB_IS_SSL", "TLS applies to MySQL; the database is SQLite"));
            }
            if ssl {
                // DB_IS_SSL asks for full verification: a weaker ssl-mode in the URL does not lower it.
                url.with_verified_tls(ssl_ca.as_deref())
            } else {
                url.with_tls(shared_db::SslMode::VerifyIdentity, ssl_ca.as_deref())
            }
            .map_err(|e| bad("DB_SSL_CA", e.to_string()))?
        } else {
            url
        };

        let pool = PoolOptions {
            max_size: parse_num::<usize>(get, "DB_POOL_SIZE", 10)?,
            connect_timeout: Duration::from_secs(parse_num::<u64>(get, "DB_CONNECT_TIMEOUT_SECS", 5)?),
            acquire_timeout: Duration::from_secs(parse_num::<u64>(get, "DB_ACQUIRE_TIMEOUT_SECS", 5)?),
        };
        if pool.max_size == 0 {
            return Err(bad("DB_POOL_SIZE", "must be at least 1"));
        }
        Ok(Self {
            url,
            is_default,
            pool,
            migrate_on_start: parse_bool(get, "DB_MIGRATE_ON_START", true)?,
        })
    }

    /// The backend the URL names.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }
}
