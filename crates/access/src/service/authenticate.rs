//! Who a presented key is: found by its digest under the current secret or an earlier
//! one of the key ring (then re-digested under the current secret), and refused when
//! revoked or expired.

use shared_db::{DbConn, DbError, DbPool, Generation, events};

use super::AccessService;
use crate::model::{AccessError, Principal};
use crate::store::{self, ApiKeyRow};

impl AccessService {
    /// The stored key `presented` names: under the current secret, else under an earlier
    /// one (then re-digested under the current secret, with an `api_key.rekeyed` event).
    async fn find(&self, conn: &mut DbConn, presented: &str) -> Result<Option<ApiKeyRow>, AccessError> {
        let current = self.digest(presented);
        for (generation, digest) in self.ring.digests(presented.as_bytes()) {
            let Some(mut row) = store::find_by_digest(conn, &digest).await? else {
                continue;
            };
            if !self.ring.verify_with(generation, presented.as_bytes(), &row.digest) {
                return Ok(None);
            }
            if generation == Generation::Current {
                return Ok(Some(row));
            }
            let id = &row.id;
            shared_db::transaction!(conn, DbError, |c| {
                store::set_digest(c, id, &current).await?;
                events::append(
                    c,
                    events::NewEvent {
                        event_type: "api_key.rekeyed",
                        actor: Some("system"),
                        subject: Some(&format!("api_key:{id}")),
                        data: serde_json::json!({}),
                    },
                )
                .await?;
                Ok(())
            })?;
            row.digest = current;
            return Ok(Some(row));
        }
        Ok(None)
    }

    /// Finds the key a caller presented; [`AccessError::InvalidKey`],
    /// [`AccessError::Revoked`] or [`AccessError::Expired`] unless it exists, is not
    /// revoked and has not expired.
    pub async fn authenticate(&self, pool: &DbPool, presented: &str) -> Result<Principal, AccessError> {
        let mut conn = pool.get().await?;
        let Some(row) = self.find(&mut conn, presented).await? else {
            return Err(AccessError::InvalidKey);
        };
        let now = shared_db::now();
        if row.revoked_at.is_some() {
            return Err(AccessError::Revoked);
        }
        if row.expires_at.is_some_and(|t| t <= now) {
            return Err(AccessError::Expired);
        }
        if row.last_used_at.is_none_or(|t| now - t > chrono::Duration::seconds(60)) {
            // Best effort: a failed touch must not fail the request.
            if let Err(e) = store::touch(&mut conn, &row.id, now).await {
                tracing::debug!(error = %e, "could not record API key use");
            }
        }
        Ok(Principal {
            key_id: row.id,
            scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
            expires_at: row.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use shared_db::KeyRing;

    use super::AccessService;

    #[test]
    fn digests_depend_on_the_secret_and_verify_in_constant_time() {
        let a = AccessService::new(KeyRing::new(b"0123456789abcdef0123456789abcdef", &[]));
        let b = AccessService::new(KeyRing::new(b"fedcba9876543210fedcba9876543210", &[]));
        let d = a.digest("eb_key");
        assert_eq!(d.len(), 64);
        assert_ne!(d, b.digest("eb_key"));
        assert!(a.ring.verify_hex(b"eb_key", &d).is_some());
        assert!(a.ring.verify_hex(b"eb_kez", &d).is_none());
        assert!(b.ring.verify_hex(b"eb_key", &d).is_none());
        assert!(a.ring.verify_hex(b"eb_key", "not hex").is_none());
    }
}
