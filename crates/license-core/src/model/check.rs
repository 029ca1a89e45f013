//! Checks of the fields a caller sends: each returns the stored form or names the field.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

use super::LicenseError;
use super::error::invalid;

/// Parses a duration such as `30d`, `12h`, `1y` (humantime syntax).
pub fn parse_duration(field: &'static str, s: &str) -> Result<chrono::Duration, LicenseError> {
    let d: Duration = humantime::parse_duration(s.trim())
        .map_err(|e| invalid(field, format!("`{s}` is not a duration such as 30d, 12h or 1y ({e})")))?;
    if d.is_zero() {
        return Err(invalid(field, "must be longer than zero"));
    }
    if d > Duration::from_secs(100 * 366 * 86_400) {
        return Err(invalid(field, "must be under 100 years"));
    }
    chrono::Duration::from_std(d).map_err(|_| invalid(field, "too long"))
}

pub(crate) fn check_name(name: &str) -> Result<String, LicenseError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "must be 1 to 200 characters"));
    }
    Ok(name.to_owned())
}

pub(crate) fn check_email(email: &str) -> Result<String, LicenseError> {
    let email = email.trim();
    if email.len() > 254 || !email_address::EmailAddress::is_valid(email) {
        return Err(invalid("owner_email", format!("`{email}` is not an email address")));
    }
    Ok(email.to_owned())
}

pub(crate) fn check_entitlements(list: &[String]) -> Result<String, LicenseError> {
    if list.len() > 100 {
        return Err(invalid("entitlements", "at most 100"));
    }
    for e in list {
        let ok = !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            return Err(invalid(
                "entitlements",
                format!("`{e}`: 1 to 64 of A-Z, a-z, 0-9, - _ . :"),
            ));
        }
    }
    let mut sorted = list.to_vec();
    sorted.sort();
    sorted.dedup();
    Ok(serde_json::Value::from(sorted).to_string())
}

pub(crate) fn check_metadata(m: &serde_json::Map<String, serde_json::Value>) -> Result<String, LicenseError> {
    let s = serde_json::Value::Object(m.clone()).to_string();
    if s.len() > 16 * 1024 {
        return Err(invalid("metadata", "at most 16 KiB of JSON"));
    }
    Ok(s)
}

pub(crate) fn check_max_machines(n: Option<i32>) -> Result<Option<i32>, LicenseError> {
    match n {
        Some(n) if n < 1 => Err(invalid("max_machines", "must be at least 1, or null for unlimited")),
        other => Ok(other),
    }
}

pub(crate) fn check_heartbeat(n: Option<i32>) -> Result<Option<i32>, LicenseError> {
    match n {
        Some(n) if !(10..=31_536_000).contains(&n) => Err(invalid(
            "heartbeat_interval_secs",
            "must be 10 to 31536000 seconds, or null",
        )),
        other => Ok(other),
    }
}

pub(crate) fn check_resurrection(n: Option<i32>) -> Result<Option<i32>, LicenseError> {
    match n {
        Some(n) if !(1..=31_536_000).contains(&n) => Err(invalid(
            "heartbeat_resurrection_secs",
            "must be 1 to 31536000 seconds, or null",
        )),
        other => Ok(other),
    }
}

/// A duration field (`grace_period`, `duration`) in whole seconds, at least one.
pub(crate) fn duration_secs(field: &'static str, s: &str) -> Result<i64, LicenseError> {
    let secs = parse_duration(field, s)?.num_seconds();
    if secs < 1 {
        return Err(invalid(field, "must be at least 1s"));
    }
    Ok(secs)
}

/// The request's `nonce` when it is one that answers echo (else none: a refused nonce
/// is never echoed).
pub fn valid_nonce(n: &Option<String>) -> Option<&str> {
    check_nonce(n).ok().flatten().and(n.as_deref())
}

/// A holder's `nonce`: 1 to 128 printable characters, echoed as sent.
pub(crate) fn check_nonce(n: &Option<String>) -> Result<Option<String>, LicenseError> {
    match n {
        None => Ok(None),
        Some(s) if (1..=128).contains(&s.chars().count()) && !s.chars().any(char::is_control) => Ok(Some(s.clone())),
        Some(_) => Err(invalid("nonce", "must be 1 to 128 printable characters")),
    }
}

pub(crate) fn check_fingerprint(f: &str) -> Result<String, LicenseError> {
    let f = f.trim();
    if f.is_empty() || f.chars().count() > 255 || f.chars().any(char::is_control) {
        return Err(invalid("fingerprint", "must be 1 to 255 printable characters"));
    }
    Ok(f.to_owned())
}

pub(crate) fn check_optional(
    field: &'static str,
    v: &Option<String>,
    max: usize,
) -> Result<Option<String>, LicenseError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() > max => Err(invalid(field, format!("at most {max} characters"))),
        Some(s) => Ok(Some(s.to_owned())),
    }
}

pub(crate) fn future(field: &'static str, t: DateTime<Utc>) -> Result<NaiveDateTime, LicenseError> {
    let t = t.naive_utc().trunc_subsecs(6);
    if t <= shared_db::now() {
        return Err(invalid(field, "must be in the future"));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn durations_parse_or_name_the_field() {
        assert_eq!(parse_duration("duration", "30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_duration("duration", "12h").unwrap(), chrono::Duration::hours(12));
        assert!(parse_duration("duration", "1y").unwrap() > chrono::Duration::days(365));
        for bad in ["", "soon", "0s", "-1d", "200y"] {
            match parse_duration("ttl", bad) {
                Err(LicenseError::Invalid { field, .. }) => assert_eq!(field, "ttl"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
