//! AWS credentials, shared by SES and S3: static keys from the original variables, or
//! the standard chain.

use secrecy::SecretString;

pub use crate::aws_client::{AwsCredentials, StaticKeys};

use super::{ConfigError, Lookup, bad};

/// Static keys from two variables, both or neither.
pub(super) fn key_pair(
    get: &Lookup<'_>,
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
/// `AWS_SESSION_TOKEN`) when set, otherwise the standard chain for SES's (or S3's) region.
/// One provider serves SES and S3 (one cache of temporary credentials); building the chain
/// reads nothing yet: it is asked only when SES or S3 is used.
pub fn parse(get: &Lookup<'_>) -> Result<AwsCredentials, ConfigError> {
    let region = get("AWS_SES_REGION").or_else(|| get("S3_REGION"));
    Ok(
        match key_pair(
            get,
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            Some("AWS_SESSION_TOKEN"),
            "environment (AWS_ACCESS_KEY_ID)",
        )? {
            Some(keys) => AwsCredentials::fixed(&keys),
            None => AwsCredentials::chain(region.as_deref()),
        },
    )
}
