//! Issuing a licence.

use super::{LicenseService, record};
use crate::key::LicenseKey;
use crate::model::{
    IssueLicense, License, LicenseError, LicenseStatus, check_email, check_entitlements, check_heartbeat,
    check_max_machines, check_metadata, check_name, future, invalid, parse_duration,
};
use crate::store::{self, LicenseRow};

impl LicenseService {
    /// Issues a licence; the key is returned only here.
    pub async fn issue(&self, req: IssueLicense, actor: &str) -> Result<(License, LicenseKey), LicenseError> {
        let now = shared_db::now();
        let expires_at = match (req.expires_at, req.duration.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(invalid("duration", "give expires_at or duration, not both"));
            }
            (Some(t), None) => Some(future("expires_at", t)?),
            (None, Some(d)) => Some(now + parse_duration("duration", d)?),
            (None, None) => None,
        };
        let key = LicenseKey::generate().map_err(|_| LicenseError::Signing("no randomness".into()))?;
        let row = LicenseRow {
            id: shared_db::new_id(),
            product: req.product.as_str().to_owned(),
            name: check_name(&req.name)?,
            owner_email: check_email(&req.owner_email)?,
            status: LicenseStatus::Active.as_str().to_owned(),
            key_prefix: key.prefix().to_owned(),
            key_digest: self.digest(key.as_str()),
            created_at: now,
            updated_at: now,
            expires_at,
            max_machines: check_max_machines(req.max_machines)?,
            entitlements: check_entitlements(&req.entitlements)?,
            metadata: check_metadata(&req.metadata)?,
            require_machine: req.require_machine,
            heartbeat_interval_secs: check_heartbeat(req.heartbeat_interval_secs)?,
            last_validated_at: None,
        };
        let mut conn = self.pool.get().await?;
        let stored = &row;
        shared_db::transaction!(conn, LicenseError, |c| {
            store::insert_license(c, stored).await?;
            record(
                c,
                "license.issued",
                actor,
                &stored.id,
                serde_json::json!({
                    "product": stored.product, "name": stored.name, "owner_email": stored.owner_email,
                    "expires_at": stored.expires_at.map(|t| shared_db::time::rfc3339_micros::format(&t)),
                }),
            )
            .await
        })?;
        Ok((row.into_license(0)?, key))
    }
}
