//! A licence's lifecycle: changing its attributes, suspending, reinstating, revoking
//! and renewing it.

use chrono::SubsecRound;

use super::issue::policy_for;
use super::{LicenseService, record};
use crate::model::{
    License, LicenseError, LicensePatch, LicenseStatus, Product, Renew, check_email, check_entitlements,
    check_heartbeat, check_max_machines, check_metadata, check_name, check_resurrection, duration_secs, future,
    invalid, parse_duration,
};
use crate::store::{self, LicenseRow};

impl LicenseService {
    /// Changes a licence's attributes.
    pub async fn update(&self, id: &str, patch: LicensePatch, actor: &str) -> Result<License, LicenseError> {
        let name = patch.name.as_deref().map(check_name).transpose()?;
        let email = patch.owner_email.as_deref().map(check_email).transpose()?;
        let expires = patch.expires_at.map(|t| t.map(|t| t.naive_utc().trunc_subsecs(6)));
        let max = patch.max_machines.map(check_max_machines).transpose()?;
        let entitlements = patch.entitlements.as_deref().map(check_entitlements).transpose()?;
        let metadata = patch.metadata.as_ref().map(check_metadata).transpose()?;
        let heartbeat = patch.heartbeat_interval_secs.map(check_heartbeat).transpose()?;
        let require_machine = patch.require_machine;
        let cull = patch.heartbeat_cull;
        let resurrection = patch.heartbeat_resurrection_secs.map(check_resurrection).transpose()?;
        let grace = patch
            .grace_period
            .as_ref()
            .map(|g| g.as_deref().map(|g| duration_secs("grace_period", g)).transpose())
            .transpose()?;
        let strategy = patch.expiry_strategy.map(|s| s.map(|s| s.as_str().to_owned()));
        let policy_id = patch.policy_id.clone();
        let changed: Vec<&str> = [
            ("name", name.is_some()),
            ("owner_email", email.is_some()),
            ("expires_at", expires.is_some()),
            ("max_machines", max.is_some()),
            ("entitlements", entitlements.is_some()),
            ("metadata", metadata.is_some()),
            ("require_machine", require_machine.is_some()),
            ("heartbeat_interval_secs", heartbeat.is_some()),
            ("heartbeat_cull", cull.is_some()),
            ("heartbeat_resurrection_secs", resurrection.is_some()),
            ("grace_period", grace.is_some()),
            ("expiry_strategy", strategy.is_some()),
            ("policy_id", policy_id.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        if changed.is_empty() {
            return Err(invalid("body", "give at least one field to change"));
        }
        self.change(id, actor, move |mut row| {
            if let Some(v) = &name {
                row.name = v.clone();
            }
            if let Some(v) = &email {
                row.owner_email = v.clone();
            }
            if let Some(v) = expires {
                row.expires_at = v;
                row.grace_started_at = None;
            }
            if let Some(v) = max {
                row.max_machines = v;
            }
            if let Some(v) = &entitlements {
                row.entitlements = v.clone();
            }
            if let Some(v) = &metadata {
                row.metadata = v.clone();
            }
            if let Some(v) = require_machine {
                row.require_machine = v;
            }
            if let Some(v) = heartbeat {
                row.heartbeat_interval_secs = v;
            }
            if let Some(v) = cull {
                row.heartbeat_cull = v;
            }
            if let Some(v) = resurrection {
                row.heartbeat_resurrection_secs = v;
            }
            if let Some(v) = grace {
                row.grace_period_secs = v;
            }
            if let Some(v) = &strategy {
                row.expiry_strategy = v.clone();
            }
            if let Some(v) = &policy_id {
                row.policy_id = v.clone();
            }
            Ok((row, "license.updated", serde_json::json!({ "fields": changed })))
        })
        .await
    }

    /// `active` → `suspended`.
    pub async fn suspend(&self, id: &str, actor: &str) -> Result<License, LicenseError> {
        self.transition(
            id,
            actor,
            "suspend",
            &[LicenseStatus::Active],
            LicenseStatus::Suspended,
            "license.suspended",
        )
        .await
    }

    /// `suspended` → `active`.
    pub async fn reinstate(&self, id: &str, actor: &str) -> Result<License, LicenseError> {
        self.transition(
            id,
            actor,
            "reinstate",
            &[LicenseStatus::Suspended],
            LicenseStatus::Active,
            "license.reinstated",
        )
        .await
    }

    /// `active` or `suspended` → `revoked` (final).
    pub async fn revoke(&self, id: &str, actor: &str) -> Result<License, LicenseError> {
        self.transition(
            id,
            actor,
            "revoke",
            &[LicenseStatus::Active, LicenseStatus::Suspended],
            LicenseStatus::Revoked,
            "license.revoked",
        )
        .await
    }

    async fn transition(
        &self,
        id: &str,
        actor: &str,
        action: &'static str,
        from: &'static [LicenseStatus],
        to: LicenseStatus,
        event: &'static str,
    ) -> Result<License, LicenseError> {
        self.change(id, actor, move |mut row| {
            let current = row.status();
            if !from.contains(&current) {
                return Err(LicenseError::InvalidTransition {
                    action,
                    from: current.as_str(),
                });
            }
            row.status = to.as_str().to_owned();
            Ok((
                row,
                event,
                serde_json::json!({ "from": current.as_str(), "to": to.as_str() }),
            ))
        })
        .await
    }

    /// Extends the expiry by a duration (from the later of now and the current expiry)
    /// or sets it; a revoked licence cannot be renewed.
    pub async fn renew(&self, id: &str, renew: Renew, actor: &str) -> Result<License, LicenseError> {
        let by = match (renew.duration.as_deref(), renew.expires_at) {
            (Some(d), None) => Ok(parse_duration("duration", d)?),
            (None, Some(t)) => Err(future("expires_at", t)?),
            _ => {
                return Err(invalid("duration", "give exactly one of duration and expires_at"));
            }
        };
        self.change(id, actor, move |mut row| {
            if row.status() == LicenseStatus::Revoked {
                return Err(LicenseError::InvalidTransition {
                    action: "renew",
                    from: "revoked",
                });
            }
            let before = row.expires_at;
            let now = shared_db::now();
            row.expires_at = Some(match by {
                Ok(d) => before.map_or(now, |t| t.max(now)) + d,
                Err(t) => t,
            });
            // A new expiry: a grace period after it is a new one.
            row.grace_started_at = None;
            let data = serde_json::json!({
                "from": before.map(|t| shared_db::time::rfc3339_micros::format(&t)),
                "to": row.expires_at.map(|t| shared_db::time::rfc3339_micros::format(&t)),
            });
            Ok((row, "license.renewed", data))
        })
        .await
    }

    /// Loads licence `id` locked for update, applies `f`, stores the result and records
    /// the event `f` names, all in one transaction (`f` runs again if it does). A policy
    /// newly named must exist and be for the licence's product; culling needs an
    /// interval to go by.
    async fn change<F>(&self, id: &str, actor: &str, f: F) -> Result<License, LicenseError>
    where
        F: Fn(LicenseRow) -> Result<(LicenseRow, &'static str, serde_json::Value), LicenseError> + Send + Sync,
    {
        let f = &f;
        let mut conn = self.pool.get().await?;
        let (row, count, policy) = shared_db::transaction!(conn, LicenseError, |c| {
            let before = store::lock(c, id).await?.ok_or(LicenseError::NotFound)?;
            let policy_before = before.policy_id.clone();
            let (mut row, event, data) = f(before)?;
            let policy = match &row.policy_id {
                Some(p) if row.policy_id != policy_before => {
                    let product = Product::parse(&row.product).unwrap_or(Product::Client);
                    Some(policy_for(c, p, product).await?)
                }
                Some(p) => store::find_policy(c, p).await?.map(|(p, _)| p),
                None => None,
            };
            if row.heartbeat_cull == Some(true) && row.terms(policy.as_ref()).heartbeat_interval_secs.is_none() {
                return Err(invalid(
                    "heartbeat_cull",
                    "culling needs heartbeat_interval_secs (on the licence or its policy)",
                ));
            }
            row.updated_at = shared_db::now();
            store::update_license(c, &row).await?;
            record(c, event, actor, &row.id, data).await?;
            let count = store::count_machines(c, &row.id).await?;
            Ok((row, count, policy))
        })?;
        row.into_license(count, policy.as_ref())
    }
}
