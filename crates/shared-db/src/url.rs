//! Database URLs: which backend, and the URL each driver understands.

use std::fmt;

use crate::DbError;

/// The database backends Event Bridge runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// MySQL or MariaDB (production).
    Mysql,
    /// Embedded SQLite (the zero-configuration default).
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Mysql => "mysql",
            Backend::Sqlite => "sqlite",
        })
    }
}

/// A parsed database URL.
///
/// Accepted forms: `mysql://user:pass@host:port/db`, `mysql+aiomysql://...` (the original
/// service's SQLAlchemy form), `sqlite://path`, `sqlite:path` and `sqlite::memory:`.
/// The password is never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the driver receives: a `mysql://` URL or a SQLite file path (or `:memory:`).
    target: String,
}

impl DatabaseUrl {
    /// Parses a database URL, refusing schemes other than MySQL and SQLite.
    pub fn parse(raw: &str) -> Result<Self, DbError> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(DbError::InvalidUrl(
                    "a sqlite URL needs a path, as in sqlite://data/event-bridge.db or sqlite::memory:".into(),
                ));
            }
            return Ok(Self {
                backend: Backend::Sqlite,
                target: path.to_owned(),
            });
        }
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| DbError::InvalidUrl("expected a URL such as mysql://user:pass@host:3306/db".into()))?;
        match scheme {
            "mysql" | "mysql+aiomysql" | "mysql+pymysql" | "mysql+asyncmy" | "mariadb" => {}
            other => {
                return Err(DbError::InvalidUrl(format!(
                    "unsupported scheme `{other}`: use mysql:// or sqlite://"
                )));
            }
        }
        let normalised = format!("mysql://{rest}");
        let parsed =
            url::Url::parse(&normalised).map_err(|e| DbError::InvalidUrl(format!("not a valid MySQL URL: {e}")))?;
        if parsed.host_str().unwrap_or_default().is_empty() {
            return Err(DbError::InvalidUrl("the MySQL URL has no host".into()));
        }
        if parsed.path().trim_start_matches('/').is_empty() {
            return Err(DbError::InvalidUrl("the MySQL URL names no database".into()));
        }
        Ok(Self {
            backend: Backend::Mysql,
            target: normalised,
        })
    }

    /// A MySQL URL built from the original service's `DB_*` variables.
    pub fn mysql_from_parts(
        host: &str,
        port: u16,
        database: &str,
        user: &str,
        password: &str,
        ssl: bool,
    ) -> Result<Self, DbError> {
        let mut url = url::Url::parse("mysql://localhost/").map_err(|e| DbError::InvalidUrl(e.to_string()))?;
        url.set_host(Some(host))
            .map_err(|e| DbError::InvalidUrl(format!("DB_HOST: {e}")))?;
        url.set_port(Some(port))
            .map_err(|()| DbError::InvalidUrl("DB_PORT: not a valid port".into()))?;
        url.set_username(user)
            .map_err(|()| DbError::InvalidUrl("DB_USER_ID: not usable in a URL".into()))?;
        if !password.is_empty() {
            url.set_password(Some(password))
                .map_err(|()| DbError::InvalidUrl("DB_PASS: not usable in a URL".into()))?;
        }
        url.path_segments_mut()
            .map_err(|()| DbError::InvalidUrl("DB_NAME: not usable in a URL".into()))?
            .clear()
            .push(database);
        if ssl {
            url.set_query(Some("require_ssl=true"));
        }
        Self::parse(url.as_str())
    }

    /// A SQLite database at `path`.
    pub fn sqlite(path: impl Into<String>) -> Self {
        Self {
            backend: Backend::Sqlite,
            target: path.into(),
        }
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What the driver receives. Holds the password for MySQL: never log it.
    pub fn expose_target(&self) -> &str {
        &self.target
    }

    /// The SQLite file path, if this is a file-backed SQLite database.
    pub fn sqlite_file(&self) -> Option<&str> {
        (self.backend == Backend::Sqlite && self.target != ":memory:").then_some(&self.target)
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn redacted(&self) -> String {
        match self.backend {
            Backend::Sqlite => format!("sqlite://{}", self.target),
            Backend::Mysql => match url::Url::parse(&self.target) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    url.to_string()
                }
                Err(_) => "mysql://***".to_owned(),
            },
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_original_sqlalchemy_form() -> Result<(), DbError> {
        let url = DatabaseUrl::parse("mysql+aiomysql://app:s3cret@db.local:3307/event_bridge")?;
        assert_eq!(url.backend(), Backend::Mysql);
        assert_eq!(url.expose_target(), "mysql://app:s3cret@db.local:3307/event_bridge");
        assert_eq!(url.redacted(), "mysql://app:***@db.local:3307/event_bridge");
        assert!(!format!("{url:?}").contains("s3cret"));
        Ok(())
    }

    #[test]
    fn sqlite_forms() -> Result<(), DbError> {
        assert_eq!(DatabaseUrl::parse("sqlite://data/x.db")?.expose_target(), "data/x.db");
        assert_eq!(DatabaseUrl::parse("sqlite:///abs/x.db")?.expose_target(), "/abs/x.db");
        assert_eq!(DatabaseUrl::parse("sqlite:x.db")?.expose_target(), "x.db");
        let mem = DatabaseUrl::parse("sqlite::memory:")?;
        assert_eq!(mem.expose_target(), ":memory:");
        assert_eq!(mem.sqlite_file(), None);
        Ok(())
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        for bad in [
            "postgres://localhost/db",
            "mysql://localhost",
            "mysql:///db",
            "sqlite://",
            "just-a-name",
            "",
        ] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn builds_from_the_original_parts() -> Result<(), DbError> {
        let url = DatabaseUrl::mysql_from_parts("db", 3306, "event_bridge", "app", "p@ss/word", true)?;
        assert_eq!(
            url.expose_target(),
            "mysql://app:p%40ss%2Fword@db:3306/event_bridge?require_ssl=true"
        );
        let url = DatabaseUrl::mysql_from_parts("db", 3306, "eb", "root", "", false)?;
        assert_eq!(url.expose_target(), "mysql://root@db:3306/eb");
        Ok(())
    }
}
