//! Creating a key: validation of the name, scopes and expiry, what the granter may hand
//! on, and the row with its `api_key.created` event.

use chrono::{DateTime, SubsecRound, Utc};
use secrecy::SecretString;
use shared_db::{DbConn, DbError, events};

use super::AccessService;
use crate::model::{AccessError, IssuedKey, KEY_PREFIX, Principal};
use crate::scopes::validate_scope;
use crate::store::{self, ApiKeyRow};

impl AccessService {
    /// Creates a key with `scopes`, recording an `api_key.created` event by `actor`.
    /// `granter` is the key that asks (none for the local CLI, which the operator runs):
    /// it may hand on only scopes it holds itself (see [`crate::scopes::covers`]), else
    /// [`AccessError::InsufficientScope`] naming the first scope it lacks.
    pub async fn create(
        &self,
        conn: &mut DbConn,
        name: &str,
        scopes: &[String],
        expires_at: Option<DateTime<Utc>>,
        granter: Option<&Principal>,
    ) -> Result<IssuedKey, AccessError> {
        let actor = granter.map_or_else(|| "cli".to_owned(), Principal::actor);
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AccessError::InvalidName);
        }
        if scopes.is_empty() {
            return Err(AccessError::NoScopes);
        }
        for scope in scopes {
            validate_scope(scope).map_err(AccessError::InvalidScope)?;
            self.check_namespace(scope)?;
        }
        if let Some(granter) = granter {
            granter.require_covers(scopes)?;
        }
        let now = shared_db::now();
        if expires_at.is_some_and(|t| t.naive_utc() <= now) {
            return Err(AccessError::InvalidExpiry);
        }
        if let Some(limit) = granter.and_then(|g| g.expires_at)
            && expires_at.is_none_or(|t| t.naive_utc() > limit)
        {
            return Err(AccessError::ExpiryNotAllowed(limit));
        }
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let secret = format!(
            "{KEY_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&random).to_ascii_lowercase()
        );
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let row = ApiKeyRow {
            id: shared_db::new_id(),
            name: name.to_owned(),
            prefix: secret.chars().take(KEY_PREFIX.len() + 6).collect(),
            digest: self.digest(&secret),
            scopes: scopes.join(" "),
            created_at: now,
            expires_at: expires_at.map(|t| t.naive_utc().trunc_subsecs(6)),
            last_used_at: None,
            revoked_at: None,
        };
        let stored = &row;
        shared_db::transaction!(conn, DbError, |c| {
            store::insert(c, stored).await?;
            events::append(
                c,
                events::NewEvent {
                    event_type: "api_key.created",
                    actor: Some(&actor),
                    subject: Some(&format!("api_key:{}", stored.id)),
                    data: serde_json::json!({ "name": stored.name, "scopes": scopes }),
                },
            )
            .await?;
            Ok(())
        })?;
        Ok(IssuedKey {
            row,
            secret: SecretString::from(secret),
        })
    }
}
