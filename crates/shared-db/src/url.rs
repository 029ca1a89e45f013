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

/// How much of the server's certificate a TLS connection to MySQL checks (MySQL's
/// `ssl-mode`, without its optional modes: TLS is either required or off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SslMode {
    /// Encrypted; the certificate is not checked (MySQL's `REQUIRED` without a CA).
    Required,
    /// Encrypted; the certificate must chain to a trusted root, any host name.
    VerifyCa,
    /// Encrypted; the certificate must chain to a trusted root and name the host.
    VerifyIdentity,
}

impl SslMode {
    /// MySQL's name for the mode: `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }

    fn parse(value: &str) -> Result<Option<Self>, DbError> {
        match value.to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" | "DISABLE" | "FALSE" | "0" => Ok(None),
            "REQUIRED" | "REQUIRE" => Ok(Some(Self::Required)),
            "VERIFY_CA" => Ok(Some(Self::VerifyCa)),
            "VERIFY_IDENTITY" | "VERIFY_FULL" | "TRUE" | "1" => Ok(Some(Self::VerifyIdentity)),
            "PREFERRED" | "PREFER" => Err(DbError::InvalidUrl(
                "ssl-mode=PREFERRED would fall back to plain text silently: use REQUIRED, VERIFY_CA or \
                 VERIFY_IDENTITY (or DISABLED)"
                    .into(),
            )),
            _ => Err(DbError::InvalidUrl(format!(
                "ssl-mode `{value}`: use DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
            ))),
        }
    }
}

/// TLS to a MySQL server: the mode and the extra trusted roots.
#[derive(Clone, PartialEq, Eq)]
pub struct MysqlTls {
    mode: SslMode,
    /// The CA file's path and its certificates (DER), read when configured.
    ca: Option<(String, Vec<Vec<u8>>)>,
}

impl MysqlTls {
    /// The verification mode.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The CA file (`DB_SSL_CA` or `ssl-ca`), if one was given.
    pub fn ca_file(&self) -> Option<&str> {
        self.ca.as_ref().map(|(path, _)| path.as_str())
    }

    /// mysql_async's options. `VERIFY_IDENTITY` trusts the system's roots and Mozilla's
    /// plus the CA file; `VERIFY_CA`, which does not check the host name, trusts the CA
    /// file alone (with public roots, any publicly trusted certificate for any name
    /// would pass); `REQUIRED` checks nothing.
    pub(crate) fn ssl_opts(&self) -> mysql_async::SslOpts {
        let own = self.ca.iter().flat_map(|(_, certs)| certs.iter());
        let trusted: Vec<_> = match self.mode {
            SslMode::VerifyIdentity => system_roots().iter().chain(own).map(|der| der.clone().into()).collect(),
            SslMode::VerifyCa | SslMode::Required => own.map(|der| der.clone().into()).collect(),
        };
        mysql_async::SslOpts::default()
            .with_root_certs(trusted)
            // (REQUIRED checks nothing, but rustls wants some root to build its verifier.)
            .with_disable_built_in_roots(self.mode == SslMode::VerifyCa)
            .with_danger_accept_invalid_certs(self.mode == SslMode::Required)
            .with_danger_skip_domain_validation(self.mode == SslMode::VerifyCa)
    }
}

impl fmt::Debug for MysqlTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlTls")
            .field("mode", &self.mode)
            .field("ca", &self.ca_file())
            .finish()
    }
}

/// The operating system's trusted roots (`/etc/ssl/certs`, or `SSL_CERT_FILE`), read once.
fn system_roots() -> &'static [Vec<u8>] {
    static ROOTS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading the system's trusted roots for database TLS");
        }
        found.certs.into_iter().map(|c| c.to_vec()).collect()
    })
}

/// Reads the certificates of a PEM (or single DER) CA file.
fn read_ca(path: &str) -> Result<Vec<Vec<u8>>, DbError> {
    let bytes = std::fs::read(path).map_err(|e| DbError::InvalidUrl(format!("cannot read the CA file {path}: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    if bytes.first() == Some(&0x30) && !text.contains("-----BEGIN") {
        // One DER certificate (an ASN.1 SEQUENCE).
        return Ok(vec![bytes]);
    }
    let mut certs = Vec::new();
    let mut inside: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            inside = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let body = inside.take().unwrap_or_default();
            let der = data_encoding::BASE64
                .decode(body.as_bytes())
                .map_err(|_| DbError::InvalidUrl(format!("{path}: a certificate is not valid base64")))?;
            certs.push(der);
        } else if let Some(body) = inside.as_mut() {
            body.push_str(line);
        }
    }
    if certs.is_empty() {
        return Err(DbError::InvalidUrl(format!(
            "{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

/// A parsed database URL.
///
/// Accepted forms: `mysql://user:pass@host:port/db`, `mysql+aiomysql://...` (the original
/// service's SQLAlchemy form), `sqlite://path`, `sqlite:path` and `sqlite::memory:`.
/// MySQL URLs may carry MySQL's TLS options (`ssl-mode=REQUIRED|VERIFY_CA|VERIFY_IDENTITY`,
/// `ssl-ca=PATH`; `ssl_mode`/`ssl_ca` and mysql_async's `require_ssl=true` too).
/// The password is never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the driver receives: a `mysql://` URL (without the TLS options) or a SQLite
    /// file path (or `:memory:`).
    target: String,
    /// TLS to MySQL, when required.
    tls: Option<MysqlTls>,
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
                tls: None,
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
        let mut parsed =
            url::Url::parse(&normalised).map_err(|e| DbError::InvalidUrl(format!("not a valid MySQL URL: {e}")))?;
        if parsed.host_str().unwrap_or_default().is_empty() {
            return Err(DbError::InvalidUrl("the MySQL URL has no host".into()));
        }
        if parsed.path().trim_start_matches('/').is_empty() {
            return Err(DbError::InvalidUrl("the MySQL URL names no database".into()));
        }
        // MySQL's TLS options are ours to apply; every other option goes to the driver,
        // which refuses what it does not know (checked here, not at the first query).
        let mut mode = None;
        let mut mode_given = false;
        let mut ca = None;
        let mut rest = Vec::new();
        for (key, value) in parsed.query_pairs() {
            match key.to_ascii_lowercase().replace('-', "_").as_str() {
                "ssl_mode" | "sslmode" => {
                    mode = SslMode::parse(&value)?;
                    mode_given = true;
                }
                "require_ssl" | "ssl" => {
                    if !mode_given {
                        mode = SslMode::parse(&value)?.map(|_| SslMode::VerifyIdentity);
                    }
                }
                "ssl_ca" | "sslca" | "ssl_root_cert" => ca = Some(value.into_owned()),
                "verify_ca" | "verify_identity" | "built_in_roots" => {
                    return Err(DbError::InvalidUrl(format!(
                        "`{key}`: say ssl-mode=REQUIRED, VERIFY_CA or VERIFY_IDENTITY instead"
                    )));
                }
                _ => rest.push((key.into_owned(), value.into_owned())),
            }
        }
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(rest);
        }
        let target = parsed.to_string();
        mysql_async::Opts::from_url(&target).map_err(|e| DbError::InvalidUrl(format!("MySQL URL option: {e}")))?;
        let mut url = Self {
            backend: Backend::Mysql,
            target,
            tls: None,
        };
        let disabled = mode_given && mode.is_none();
        if disabled && ca.is_some() {
            return Err(DbError::InvalidUrl(
                "ssl-mode=DISABLED with ssl-ca: say which one you mean".into(),
            ));
        }
        if !disabled && (mode.is_some() || ca.is_some()) {
            if let Some(mode) = mode {
                url.tls = Some(MysqlTls { mode, ca: None });
            }
            // A CA file without a mode verifies against it, as MySQL's client does.
            url = url.with_tls(SslMode::VerifyCa, ca.as_deref())?;
        }
        Ok(url)
    }

    /// Requires TLS (`DB_IS_SSL`, `DB_SSL_CA`), trusting `ca` (a PEM file) besides the
    /// system roots. A mode the URL chose is kept (`mode` applies when it chose none),
    /// except that `REQUIRED` with a CA file verifies against it, as MySQL's client does.
    /// A SQLite URL is returned unchanged.
    pub fn with_tls(mut self, mode: SslMode, ca: Option<&str>) -> Result<Self, DbError> {
        if self.backend != Backend::Mysql {
            return Ok(self);
        }
        let previous = self.tls.take();
        let ca = match ca {
            Some(path) => Some((path.to_owned(), read_ca(path)?)),
            None => previous.as_ref().and_then(|t| t.ca.clone()),
        };
        let mode = match previous.map(|t| t.mode) {
            Some(SslMode::Required) if ca.is_some() => SslMode::VerifyCa,
            Some(chosen) => chosen,
            None => mode,
        };
        if mode == SslMode::VerifyCa && ca.is_none() {
            return Err(DbError::InvalidUrl(
                "ssl-mode=VERIFY_CA needs the CA that signs the server's certificate (ssl-ca or DB_SSL_CA): \
                 it does not check the host name, so it must not trust every public root"
                    .into(),
            ));
        }
        self.tls = Some(MysqlTls { mode, ca });
        Ok(self)
    }

    /// Requires TLS with full verification (`DB_IS_SSL=true`): `VERIFY_IDENTITY`,
    /// whatever weaker mode the URL chose, trusting `ca` besides the system roots.
    pub fn with_verified_tls(self, ca: Option<&str>) -> Result<Self, DbError> {
        if self.backend != Backend::Mysql {
            return Ok(self);
        }
        let ca = match ca {
            Some(path) => Some((path.to_owned(), read_ca(path)?)),
            None => self.tls.as_ref().and_then(|t| t.ca.clone()),
        };
        Ok(Self {
            tls: Some(MysqlTls {
                mode: SslMode::VerifyIdentity,
                ca,
            }),
            ..self
        })
    }

    /// TLS to the MySQL server, when required.
    pub fn tls(&self) -> Option<&MysqlTls> {
        self.tls.as_ref()
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
        let parsed = Self::parse(url.as_str())?;
        if ssl {
            parsed.with_tls(SslMode::VerifyIdentity, None)
        } else {
            Ok(parsed)
        }
    }

    /// A SQLite database at `path`.
    pub fn sqlite(path: impl Into<String>) -> Self {
        Self {
            backend: Backend::Sqlite,
            target: path.into(),
            tls: None,
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
                    if let Some(tls) = &self.tls {
                        url.query_pairs_mut().append_pair("ssl-mode", tls.mode.as_str());
                        if let Some(ca) = tls.ca_file() {
                            url.query_pairs_mut().append_pair("ssl-ca", ca);
                        }
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
        assert_eq!(url.expose_target(), "mysql://app:p%40ss%2Fword@db:3306/event_bridge");
        assert_eq!(url.tls().map(MysqlTls::mode), Some(SslMode::VerifyIdentity));
        let url = DatabaseUrl::mysql_from_parts("db", 3306, "eb", "root", "", false)?;
        assert_eq!(url.expose_target(), "mysql://root@db:3306/eb");
        assert!(url.tls().is_none());
        Ok(())
    }

    #[test]
    fn reads_mysqls_tls_options() -> Result<(), DbError> {
        let mode = |raw: &str| DatabaseUrl::parse(raw).map(|u| u.tls().map(MysqlTls::mode));
        assert_eq!(mode("mysql://u@h/db")?, None);
        assert_eq!(mode("mysql://u@h/db?ssl-mode=REQUIRED")?, Some(SslMode::Required));
        // VERIFY_CA skips the host name, so it needs a CA of its own (next test).
        assert!(DatabaseUrl::parse("mysql://u@h/db?ssl_mode=verify_ca").is_err());
        assert_eq!(
            mode("mysql+aiomysql://u@h/db?ssl-mode=VERIFY_IDENTITY")?,
            Some(SslMode::VerifyIdentity)
        );
        assert_eq!(mode("mysql://u@h/db?ssl-mode=DISABLED")?, None);
        assert_eq!(mode("mysql://u@h/db?require_ssl=true")?, Some(SslMode::VerifyIdentity));
        // The TLS options are ours: the driver gets the rest.
        let url = DatabaseUrl::parse("mysql://u:pw@h/db?ssl-mode=REQUIRED&tcp_nodelay=true")?;
        assert_eq!(url.expose_target(), "mysql://u:pw@h/db?tcp_nodelay=true");
        assert_eq!(url.redacted(), "mysql://u:***@h/db?tcp_nodelay=true&ssl-mode=REQUIRED");
        // PREFERRED would fall back to plain text; unknown options are refused now, not at
        // the first query; mysql_async's own TLS switches are pointed at ssl-mode.
        for bad in [
            "mysql://u@h/db?ssl-mode=PREFERRED",
            "mysql://u@h/db?ssl-mode=sometimes",
            "mysql://u@h/db?no_such_option=1",
            "mysql://u@h/db?verify_ca=false",
            "mysql://u@h/db?ssl-ca=/no/such/ca.pem",
            "mysql://u@h/db?ssl-mode=VERIFY_CA",
        ] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad} should be refused");
        }
        Ok(())
    }

    #[test]
    fn a_ca_file_verifies_and_is_shown_by_path() -> Result<(), DbError> {
        let dir = std::env::temp_dir().join(format!("eb-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| DbError::InvalidUrl(e.to_string()))?;
        let ca = dir.join("ca.pem");
        // Any base64 body will do for parsing; verification happens at connection time.
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n",
        )
        .map_err(|e| DbError::InvalidUrl(e.to_string()))?;
        let ca = ca.display().to_string();
        // A CA file alone, or with REQUIRED, verifies the chain (MySQL's client does the same).
        let url = DatabaseUrl::parse(&format!("mysql://u@h/db?ssl-ca={ca}"))?;
        assert_eq!(url.tls().map(MysqlTls::mode), Some(SslMode::VerifyCa));
        assert_eq!(url.tls().and_then(MysqlTls::ca_file), Some(ca.as_str()));
        let url =
            DatabaseUrl::parse("mysql://u@h/db?ssl-mode=REQUIRED")?.with_tls(SslMode::VerifyIdentity, Some(&ca))?;
        assert_eq!(url.tls().map(MysqlTls::mode), Some(SslMode::VerifyCa));
        // VERIFY_CA trusts that file alone; VERIFY_IDENTITY the public roots too.
        let opts = url
            .tls()
            .map(MysqlTls::ssl_opts)
            .ok_or(DbError::InvalidUrl("tls".into()))?;
        assert!(opts.disable_built_in_roots() && opts.root_certs().len() == 1);
        assert!(!opts.accept_invalid_certs() && opts.skip_domain_validation());
        let full = DatabaseUrl::parse("mysql://u@h/db")?.with_verified_tls(Some(&ca))?;
        let opts = full
            .tls()
            .map(MysqlTls::ssl_opts)
            .ok_or(DbError::InvalidUrl("tls".into()))?;
        assert!(!opts.disable_built_in_roots() && !opts.skip_domain_validation());
        // DB_IS_SSL is a floor: a weaker mode in the URL does not lower it.
        let url = DatabaseUrl::parse("mysql://u@h/db?ssl-mode=REQUIRED")?.with_verified_tls(None)?;
        assert_eq!(url.tls().map(MysqlTls::mode), Some(SslMode::VerifyIdentity));
        assert!(DatabaseUrl::parse(&format!("mysql://u@h/db?ssl-mode=DISABLED&ssl-ca={ca}")).is_err());
        // DB_IS_SSL on a URL that chose no mode: full verification.
        let url = DatabaseUrl::parse("mysql://u@h/db")?.with_tls(SslMode::VerifyIdentity, None)?;
        assert_eq!(url.tls().map(MysqlTls::mode), Some(SslMode::VerifyIdentity));
        assert!(format!("{:?}", url.tls()).contains("VerifyIdentity"));
        // A file with no certificate in it.
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "nothing here").map_err(|e| DbError::InvalidUrl(e.to_string()))?;
        let err = DatabaseUrl::parse("mysql://u@h/db")?
            .with_tls(SslMode::VerifyIdentity, Some(&empty.display().to_string()))
            .err();
        assert!(err.is_some_and(|e| e.to_string().contains("no PEM certificate")));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
