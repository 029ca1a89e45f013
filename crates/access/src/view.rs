//! API keys as callers see them: the request that creates one, a key as listed (never
//! the key itself), a newly created key with its secret, and a page of keys.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::model::{ApiKeyStatus, IssuedKey, KeyPage, status};
use crate::store::ApiKeyRow;

/// A request to create a key.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for (1 to 200 characters).
    #[cfg_attr(feature = "openapi", schema(example = "web platform"))]
    pub name: String,
    /// Scopes the key holds: `*` for all, or names such as `emails:send`, `data:read:orders`.
    #[cfg_attr(feature = "openapi", schema(example = json!(["emails:send", "slack:post"])))]
    pub scopes: Vec<String>,
    /// When the key stops working (RFC 3339); never when absent.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    /// Key id.
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// The key's first characters, to tell keys apart.
    #[cfg_attr(feature = "openapi", schema(example = "eb_k3f9qa"))]
    pub prefix: String,
    /// Scopes held.
    pub scopes: Vec<String>,
    /// Whether it works now.
    pub status: ApiKeyStatus,
    /// Created.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Stops working at.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Last used (to the minute).
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revoked at.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        let status = status(&row, shared_db::now());
        ApiKey {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
            status,
            created_at: row.created_at.and_utc(),
            expires_at: row.expires_at.map(|t| t.and_utc()),
            last_used_at: row.last_used_at.map(|t| t.and_utc()),
            revoked_at: row.revoked_at.map(|t| t.and_utc()),
        }
    }
}

/// A newly created key: `key` appears in this response only.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    /// The key's details.
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The key. Store it now: it cannot be shown again.
    #[cfg_attr(feature = "openapi", schema(example = "eb_k3f9qa..."))]
    pub key: String,
}

impl From<IssuedKey> for CreatedApiKey {
    fn from(issued: IssuedKey) -> Self {
        CreatedApiKey {
            key: issued.secret.expose_secret().to_owned(),
            api_key: issued.row.into(),
        }
    }
}

/// One page of keys.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyList {
    /// Keys, newest first unless `order=asc`.
    pub items: Vec<ApiKey>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<KeyPage> for ApiKeyList {
    fn from(page: KeyPage) -> Self {
        ApiKeyList {
            items: page.items.into_iter().map(ApiKey::from).collect(),
            next_cursor: page.next_cursor,
        }
    }
}
