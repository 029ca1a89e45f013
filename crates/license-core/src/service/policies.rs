//! Policies: creating, changing, listing and deleting them. A policy in use cannot be
//! deleted; changing one changes its licences at once (they read it on every use).

use shared_db::paging::{self, Order, PagingError};

use super::LicenseService;
use crate::model::{
    CreatePolicy, ExpiryBasis, LicenseError, Policy, PolicyFilter, PolicyPage, PolicyPatch, check_entitlements,
    check_heartbeat, check_max_machines, check_metadata, check_name, check_resurrection, duration_secs, invalid,
};
use crate::store::{self, PolicyRow};

impl LicenseService {
    /// Creates a policy.
    pub async fn create_policy(&self, req: CreatePolicy, actor: &str) -> Result<Policy, LicenseError> {
        let now = shared_db::now();
        let row = PolicyRow {
            id: shared_db::new_id(),
            product: req.product.as_str().to_owned(),
            name: check_name(&req.name)?,
            max_machines: check_max_machines(req.max_machines)?,
            require_machine: req.require_machine,
            heartbeat_interval_secs: check_heartbeat(req.heartbeat_interval_secs)?,
            heartbeat_cull: req.heartbeat_cull,
            heartbeat_resurrection_secs: check_resurrection(req.heartbeat_resurrection_secs)?,
            grace_period_secs: secs("grace_period", req.grace_period.as_deref())?,
            expiry_strategy: req.expiry_strategy.as_str().to_owned(),
            expiry_basis: req.expiry_basis.as_str().to_owned(),
            duration_secs: secs("duration", req.duration.as_deref())?,
            entitlements: check_entitlements(&req.entitlements)?,
            metadata: check_metadata(&req.metadata)?,
            created_at: now,
            updated_at: now,
        };
        coherent(&row)?;
        let mut conn = self.pool.get().await?;
        let stored = &row;
        shared_db::transaction!(conn, LicenseError, |c| {
            store::insert_policy(c, stored).await?;
            record_policy(
                c,
                "policy.created",
                actor,
                stored,
                serde_json::json!({
                    "product": stored.product, "name": stored.name,
                }),
            )
            .await
        })?;
        row.into_policy(0)
    }

    /// One policy.
    pub async fn policy(&self, id: &str) -> Result<Policy, LicenseError> {
        let mut conn = self.pool.get().await?;
        let (row, count) = store::find_policy(&mut conn, id)
            .await?
            .ok_or(LicenseError::PolicyNotFound)?;
        row.into_policy(count)
    }

    /// A page of policies, newest first.
    pub async fn policies(&self, filter: &PolicyFilter) -> Result<PolicyPage, LicenseError> {
        let limit = paging::limit(filter.limit)?;
        let (order, after) =
            paging::continue_from(filter.cursor.as_deref(), Some(Order::Desc)).map_err(PagingError::Cursor)?;
        let mut conn = self.pool.get().await?;
        let rows = store::list_policies(&mut conn, filter.product, order, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |(row, _)| paging::encode_ordered(order, &row.id));
        let mut items = Vec::with_capacity(rows.len());
        for (row, count) in rows {
            items.push(row.into_policy(count)?);
        }
        Ok(PolicyPage { items, next_cursor })
    }

    /// Changes a policy; its licences see the change at their next use.
    pub async fn update_policy(&self, id: &str, patch: PolicyPatch, actor: &str) -> Result<Policy, LicenseError> {
        let name = patch.name.as_deref().map(check_name).transpose()?;
        let max = patch.max_machines.map(check_max_machines).transpose()?;
        let heartbeat = patch.heartbeat_interval_secs.map(check_heartbeat).transpose()?;
        let resurrection = patch.heartbeat_resurrection_secs.map(check_resurrection).transpose()?;
        let grace = patch
            .grace_period
            .as_ref()
            .map(|g| secs("grace_period", g.as_deref()))
            .transpose()?;
        let duration = patch
            .duration
            .as_ref()
            .map(|d| secs("duration", d.as_deref()))
            .transpose()?;
        let entitlements = patch.entitlements.as_deref().map(check_entitlements).transpose()?;
        let metadata = patch.metadata.as_ref().map(check_metadata).transpose()?;
        let changed: Vec<&str> = [
            ("name", name.is_some()),
            ("max_machines", max.is_some()),
            ("require_machine", patch.require_machine.is_some()),
            ("heartbeat_interval_secs", heartbeat.is_some()),
            ("heartbeat_cull", patch.heartbeat_cull.is_some()),
            ("heartbeat_resurrection_secs", resurrection.is_some()),
            ("grace_period", grace.is_some()),
            ("expiry_strategy", patch.expiry_strategy.is_some()),
            ("expiry_basis", patch.expiry_basis.is_some()),
            ("duration", duration.is_some()),
            ("entitlements", entitlements.is_some()),
            ("metadata", metadata.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        if changed.is_empty() {
            return Err(invalid("body", "give at least one field to change"));
        }
        let mut conn = self.pool.get().await?;
        let (row, count) = shared_db::transaction!(conn, LicenseError, |c| {
            let mut row = store::lock_policy(c, id).await?.ok_or(LicenseError::PolicyNotFound)?;
            if let Some(v) = &name {
                row.name = v.clone();
            }
            if let Some(v) = max {
                row.max_machines = v;
            }
            if let Some(v) = patch.require_machine {
                row.require_machine = v;
            }
            if let Some(v) = heartbeat {
                row.heartbeat_interval_secs = v;
            }
            if let Some(v) = patch.heartbeat_cull {
                row.heartbeat_cull = v;
            }
            if let Some(v) = resurrection {
                row.heartbeat_resurrection_secs = v;
            }
            if let Some(v) = grace {
                row.grace_period_secs = v;
            }
            if let Some(v) = patch.expiry_strategy {
                row.expiry_strategy = v.as_str().to_owned();
            }
            if let Some(v) = patch.expiry_basis {
                row.expiry_basis = v.as_str().to_owned();
            }
            if let Some(v) = duration {
                row.duration_secs = v;
            }
            if let Some(v) = &entitlements {
                row.entitlements = v.clone();
            }
            if let Some(v) = &metadata {
                row.metadata = v.clone();
            }
            coherent(&row)?;
            row.updated_at = shared_db::now();
            store::update_policy(c, &row).await?;
            record_policy(
                c,
                "policy.updated",
                actor,
                &row,
                serde_json::json!({ "fields": changed }),
            )
            .await?;
            let count = store::count_policy_licenses(c, id).await?;
            Ok((row, count))
        })?;
        row.into_policy(count)
    }

    /// Deletes a policy no licence names (409 `policy_in_use` otherwise).
    pub async fn delete_policy(&self, id: &str, actor: &str) -> Result<(), LicenseError> {
        let mut conn = self.pool.get().await?;
        shared_db::transaction!(conn, LicenseError, |c| {
            let row = store::lock_policy(c, id).await?.ok_or(LicenseError::PolicyNotFound)?;
            let count = store::count_policy_licenses(c, id).await?;
            if count > 0 {
                return Err(LicenseError::PolicyInUse(count));
            }
            store::delete_policy(c, id).await?;
            record_policy(
                c,
                "policy.deleted",
                actor,
                &row,
                serde_json::json!({ "name": row.name }),
            )
            .await
        })
    }
}

/// A duration field in seconds.
fn secs(field: &'static str, v: Option<&str>) -> Result<Option<i64>, LicenseError> {
    v.map(|d| duration_secs(field, d)).transpose()
}

/// Terms that make sense together: culling needs an interval, and a clock that starts
/// at first use needs a duration.
fn coherent(row: &PolicyRow) -> Result<(), LicenseError> {
    if row.heartbeat_cull && row.heartbeat_interval_secs.is_none() {
        return Err(invalid("heartbeat_cull", "culling needs heartbeat_interval_secs"));
    }
    if row.expiry_basis != ExpiryBasis::Issue.as_str() && row.duration_secs.is_none() {
        return Err(invalid(
            "duration",
            format!("needed when expiry_basis is `{}`", row.expiry_basis),
        ));
    }
    Ok(())
}

async fn record_policy(
    c: &mut shared_db::DbConn,
    event_type: &str,
    actor: &str,
    row: &PolicyRow,
    data: serde_json::Value,
) -> Result<(), LicenseError> {
    Ok(shared_db::events::record(c, event_type, actor, &format!("policy:{}", row.id), data).await?)
}
