//! The licences section: the signing key of certificates and the pace of licence-holder
//! calls.

use secrecy::SecretBox;

use super::{ConfigError, Lookup, bad, parse_num, positive};

/// Licence settings.
#[derive(Debug, Clone)]
pub struct LicenseConfig {
    /// PKCS#8 DER of the configured licence signing key, if any.
    pub signing_key: Option<SecretBox<[u8]>>,
    /// Licence-holder calls per minute per client address.
    pub rate_per_address: u32,
    /// Licence-holder calls per minute per licence key.
    pub rate_per_key: u32,
}

impl LicenseConfig {
    /// Reads `LICENSE_SIGNING_KEY` and the `LICENSE_*RATE_LIMIT_PER_MINUTE` limits.
    pub fn parse(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            signing_key: get("LICENSE_SIGNING_KEY").map(|v| parse_private_key(&v)).transpose()?,
            rate_per_address: positive(
                "LICENSE_RATE_LIMIT_PER_MINUTE",
                parse_num::<u32>(get, "LICENSE_RATE_LIMIT_PER_MINUTE", 600)?,
            )?,
            rate_per_key: positive(
                "LICENSE_KEY_RATE_LIMIT_PER_MINUTE",
                parse_num::<u32>(get, "LICENSE_KEY_RATE_LIMIT_PER_MINUTE", 120)?,
            )?,
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
