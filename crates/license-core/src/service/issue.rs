//! Issuing a licence.

use chrono::NaiveDateTime;
use shared_db::DbConn;

use super::{LicenseService, record};
use crate::key::LicenseKey;
use crate::model::{
    ExpiryBasis, IssueLicense, License, LicenseError, LicenseStatus, Product, check_email, check_entitlements,
    check_heartbeat, check_max_machines, check_metadata, check_name, check_resurrection, duration_secs, future,
    invalid,
};
use crate::store::{self, LicenseRow, PolicyRow};

impl LicenseService {
    /// Issues a licence; the key is returned only here. Terms it does not set come from
    /// the policy it names (which must be for the same product).
    pub async fn issue(&self, req: IssueLicense, actor: &str) -> Result<(License, LicenseKey), LicenseError> {
        let now = shared_db::now();
        if req.expires_at.is_some() && req.duration.is_some() {
            return Err(invalid("duration", "give expires_at or duration, not both"));
        }
        let expires_at = req.expires_at.map(|t| future("expires_at", t)).transpose()?;
        let own_duration = req
            .duration
            .as_deref()
            .map(|d| duration_secs("duration", d))
            .transpose()?;
        let key = LicenseKey::generate().map_err(|_| LicenseError::Signing("no randomness".into()))?;
        let template = LicenseRow {
            id: shared_db::new_id(),
            product: req.product.as_str().to_owned(),
            name: check_name(&req.name)?,
            owner_email: check_email(&req.owner_email)?,
            status: LicenseStatus::Active.as_str().to_owned(),
            key_prefix: key.prefix().to_owned(),
            key_digest: self.digest(key.as_str()),
            created_at: now,
            updated_at: now,
            expires_at: None,
            max_machines: check_max_machines(req.max_machines)?,
            entitlements: check_entitlements(&req.entitlements)?,
            metadata: check_metadata(&req.metadata)?,
            require_machine: req.require_machine,
            heartbeat_interval_secs: check_heartbeat(req.heartbeat_interval_secs)?,
            last_validated_at: None,
            policy_id: req.policy_id.clone(),
            heartbeat_cull: req.heartbeat_cull,
            heartbeat_resurrection_secs: check_resurrection(req.heartbeat_resurrection_secs)?,
            grace_period_secs: req
                .grace_period
                .as_deref()
                .map(|g| duration_secs("grace_period", g))
                .transpose()?,
            expiry_strategy: req.expiry_strategy.map(|s| s.as_str().to_owned()),
            expiry_basis: req.expiry_basis.map(|b| b.as_str().to_owned()),
            duration_secs: None,
            expiry_started_at: None,
            grace_started_at: None,
        };
        let mut conn = self.pool.get().await?;
        let template = &template;
        let (row, policy) = shared_db::transaction!(conn, LicenseError, |c| {
            let policy = match &template.policy_id {
                Some(id) => Some(policy_for(c, id, req.product).await?),
                None => None,
            };
            let row = with_expiry(template.clone(), policy.as_ref(), expires_at, own_duration, now)?;
            store::insert_license(c, &row).await?;
            record(
                c,
                "license.issued",
                actor,
                &row.id,
                serde_json::json!({
                    "product": row.product, "name": row.name, "owner_email": row.owner_email,
                    "expires_at": row.expires_at.map(|t| shared_db::time::rfc3339_micros::format(&t)),
                    "policy_id": row.policy_id,
                }),
            )
            .await?;
            Ok((row, policy))
        })?;
        Ok((row.into_license(0, policy.as_ref())?, key))
    }
}

/// The policy `id` names, for a licence of `product`; refused by field otherwise.
pub(super) async fn policy_for(c: &mut DbConn, id: &str, product: Product) -> Result<PolicyRow, LicenseError> {
    let (policy, _) = store::find_policy(c, id)
        .await?
        .ok_or_else(|| invalid("policy_id", "no policy has that id"))?;
    if policy.product != product.as_str() {
        return Err(invalid(
            "policy_id",
            format!("the policy is for product `{}`", policy.product),
        ));
    }
    Ok(policy)
}

/// Sets a new licence's expiry from what the request gave (`expires_at` or its own
/// `duration`) and its terms under `policy`: with the `issue` basis the clock starts
/// now (the policy's `duration` applies when the request gives neither); with a
/// `first_*` basis it starts later, so a duration is needed and a date is refused.
/// Also checks that culling has an interval to go by.
pub(super) fn with_expiry(
    mut row: LicenseRow,
    policy: Option<&PolicyRow>,
    expires_at: Option<NaiveDateTime>,
    own_duration: Option<i64>,
    now: NaiveDateTime,
) -> Result<LicenseRow, LicenseError> {
    let terms = row.terms(policy);
    if row.heartbeat_cull == Some(true) && terms.heartbeat_interval_secs.is_none() {
        return Err(invalid(
            "heartbeat_cull",
            "culling needs heartbeat_interval_secs (on the licence or its policy)",
        ));
    }
    match terms.expiry_basis {
        ExpiryBasis::Issue => {
            row.expires_at = expires_at.or_else(|| {
                own_duration
                    .or(terms.duration_secs)
                    .map(|d| now + chrono::Duration::seconds(d))
            });
        }
        basis => {
            if expires_at.is_some() {
                return Err(invalid(
                    "expires_at",
                    format!(
                        "the expiry of a licence whose clock starts at its {} is set then; give duration instead",
                        basis.as_str().replace('_', " ")
                    ),
                ));
            }
            if own_duration.or(terms.duration_secs).is_none() {
                return Err(invalid(
                    "duration",
                    format!("needed when expiry_basis is `{}`", basis.as_str()),
                ));
            }
            row.duration_secs = own_duration;
        }
    }
    Ok(row)
}
