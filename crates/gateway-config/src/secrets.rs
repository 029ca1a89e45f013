//! The secrets section: `SECRET_KEY` (generated on the embedded database) and the earlier
//! secrets still honoured after a rotation.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use shared_db::Backend;

use super::{ConfigError, Lookup, bad, list};

/// Where the secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// `SECRET_KEY` was set.
    Configured(SecretString),
    /// Not set: generate one and keep it in this file (embedded default only).
    GeneratedFile(PathBuf),
}

/// `SECRET_KEY` and `SECRET_KEY_PREVIOUS`.
#[derive(Debug, Clone)]
pub struct SecretsConfig {
    /// The current secret.
    pub source: SecretSource,
    /// Earlier secrets still accepted (`SECRET_KEY_PREVIOUS`).
    pub previous: Vec<SecretString>,
}

impl SecretsConfig {
    /// Reads the secrets; on SQLite an unset `SECRET_KEY` is generated into `data_dir`.
    pub fn parse(get: &Lookup<'_>, backend: Backend, data_dir: &Path) -> Result<Self, ConfigError> {
        let source = match get("SECRET_KEY") {
            Some(key) if key.len() < 16 => {
                return Err(bad(
                    "SECRET_KEY",
                    "must be at least 16 characters (32 or more recommended)",
                ));
            }
            Some(key) => SecretSource::Configured(SecretString::from(key)),
            None if backend == Backend::Mysql => {
                return Err(bad(
                    "SECRET_KEY",
                    "required when the database is MySQL: every replica must share it, so it cannot be generated",
                ));
            }
            None => SecretSource::GeneratedFile(data_dir.join("secret_key")),
        };
        let previous = list(get, "SECRET_KEY_PREVIOUS")
            .into_iter()
            .map(|s| {
                if s.len() < 16 {
                    Err(bad("SECRET_KEY_PREVIOUS", "each secret must be at least 16 characters"))
                } else {
                    Ok(SecretString::from(s))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { source, previous })
    }
}
