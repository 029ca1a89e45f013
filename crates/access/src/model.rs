//! The model: who is calling ([`Principal`]), a new key ([`IssuedKey`]), a key's
//! status, list filters and pages, and why a request was refused ([`AccessError`]).

use chrono::NaiveDateTime;
use secrecy::SecretString;
use shared_db::DbError;
use shared_db::paging::{Order, PagingError};

use crate::scopes::{QUALIFIED, covers, grants, insufficient, reaches};
use crate::store::ApiKeyRow;

/// Keys start with this, so scanners and people can recognise them.
pub const KEY_PREFIX: &str = "eb_";

/// A new key: shown once, then only its digest exists.
pub struct IssuedKey {
    /// The stored row.
    pub row: ApiKeyRow,
    /// The key itself.
    pub secret: SecretString,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The API key's id.
    pub key_id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<NaiveDateTime>,
}

impl Principal {
    /// `Ok` when this key may hand on or take away every one of `scopes` (see
    /// [`covers`]), else a refusal naming the first it may not.
    pub fn require_covers(&self, scopes: &[String]) -> Result<(), AccessError> {
        match scopes
            .iter()
            .find(|wanted| !self.scopes.iter().any(|held| covers(held, wanted)))
        {
            Some(lacking) => Err(insufficient(&[lacking])),
            None => Ok(()),
        }
    }

    /// `Ok` when the key holds `scope`, else a refusal naming it.
    pub fn require(&self, scope: &str) -> Result<(), AccessError> {
        if self.scopes.iter().any(|held| grants(held, scope)) {
            Ok(())
        } else {
            Err(insufficient(&[scope]))
        }
    }

    /// `Ok` when the key can reach an operation documented with `family` (see
    /// [`reaches`]), else a refusal naming the narrow scopes (`blobs:write:web`, with
    /// the `qualifier` the request's path gives, asked for only then).
    pub fn require_reach(
        &self,
        family: &[String],
        qualifier: impl FnOnce() -> Option<String>,
    ) -> Result<(), AccessError> {
        if reaches(&self.scopes, family) {
            return Ok(());
        }
        let qualifier = qualifier();
        let needed: Vec<String> = family
            .iter()
            .map(|f| match &qualifier {
                Some(q) if QUALIFIED.contains(&f.as_str()) => format!("{f}:{q}"),
                _ => f.clone(),
            })
            .collect();
        Err(insufficient(&needed))
    }

    /// `Ok` when the key holds any of `scopes`, else a refusal naming the first.
    pub fn require_any(&self, scopes: &[&str]) -> Result<(), AccessError> {
        match scopes.iter().find(|s| self.require(s).is_ok()) {
            Some(_) => Ok(()),
            None => Err(insufficient(scopes)),
        }
    }

    /// How this caller appears in audit events.
    pub fn actor(&self) -> String {
        format!("api_key:{}", self.key_id)
    }
}

/// Whether a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyStatus {
    /// Usable.
    Active,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
}

/// True when the key's expiry has passed.
pub fn is_expired(row: &ApiKeyRow, now: NaiveDateTime) -> bool {
    row.expires_at.is_some_and(|t| t <= now)
}

/// Whether the key works at `now`.
pub fn status(row: &ApiKeyRow, now: NaiveDateTime) -> ApiKeyStatus {
    if row.revoked_at.is_some() {
        ApiKeyStatus::Revoked
    } else if is_expired(row, now) {
        ApiKeyStatus::Expired
    } else {
        ApiKeyStatus::Active
    }
}

/// Which page of keys to list.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct KeyFilter {
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor` (which keeps its page's order).
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    pub order: Option<Order>,
}

/// One page of keys.
#[derive(Debug, Clone)]
pub struct KeyPage {
    /// The keys.
    pub items: Vec<ApiKeyRow>,
    /// The cursor of the next page; none on the last.
    pub next_cursor: Option<String>,
}

/// Why an access request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The key's name is empty or too long.
    #[error("the name must be 1 to 200 characters")]
    InvalidName,
    /// No scope was asked for.
    #[error("give at least one scope")]
    NoScopes,
    /// A scope no key can hold (the message names it).
    #[error("{0}")]
    InvalidScope(String),
    /// A storage scope for a namespace that is not configured (the message names it).
    #[error("{0}")]
    UnknownNamespace(String),
    /// The expiry is not in the future.
    #[error("expires_at must be in the future")]
    InvalidExpiry,
    /// The new key would outlive the key that creates it (which expires at `.0`).
    #[error(
        "this API key expires at {}Z; a key it creates must expire no later (set expires_at)",
        .0.format("%Y-%m-%dT%H:%M:%S")
    )]
    ExpiryNotAllowed(NaiveDateTime),
    /// The key lacks `scope`; any of `would_do` (narrowest first) would allow the call.
    #[error("this API key lacks the `{scope}` scope")]
    InsufficientScope {
        /// The narrowest scope the call needs.
        scope: String,
        /// Every scope that would do.
        would_do: Vec<String>,
    },
    /// No key has that id.
    #[error("no API key has that id")]
    NotFound,
    /// The presented key is not one of ours.
    #[error("the API key is not valid")]
    InvalidKey,
    /// The presented key was revoked.
    #[error("the API key has been revoked")]
    Revoked,
    /// The presented key expired.
    #[error("the API key has expired")]
    Expired,
    /// A refused page request.
    #[error(transparent)]
    Paging(#[from] PagingError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl AccessError {
    /// True when the presented key did not authenticate (the caller counts failures).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            AccessError::InvalidKey | AccessError::Revoked | AccessError::Expired
        )
    }
}

impl From<shared_db::paging::CursorError> for AccessError {
    fn from(e: shared_db::paging::CursorError) -> Self {
        AccessError::Paging(e.into())
    }
}

impl shared_db::LockConflict for AccessError {
    fn is_lock_conflict(&self) -> bool {
        matches!(self, AccessError::Db(e) if e.is_lock_conflict())
    }
}
