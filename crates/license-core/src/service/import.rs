//! Importing licences from the original service, keys and all: each key is stored only
//! as its digest, so the holders' clients keep working with the keys they have.

use std::collections::HashMap;

use shared_db::DbConn;

use super::{LicenseService, record};
use crate::model::{ImportFile, ImportRecord, ImportReport, LicenseError, invalid};
use crate::store::{self, LicenseRow};

/// Digests looked up per statement.
const LOOKUP_BATCH: usize = 64;

/// Licences written between two yields to the runtime (one transaction in all).
const WRITE_BATCH: usize = 200;

impl LicenseService {
    /// Imports the licences of `file` in one transaction, each with a `license.imported`
    /// event by `cli`. A line whose key a licence already has is skipped: `unchanged`
    /// when its fields match, else reported with the fields that differ (never
    /// overwritten), so importing a file again changes nothing. A `dry_run` looks
    /// everything up and writes nothing.
    pub async fn import(&self, file: &ImportFile, dry_run: bool) -> Result<ImportReport, LicenseError> {
        let mut conn = self.pool.get().await?;
        if dry_run {
            let plan = self.plan(&mut conn, file).await?;
            return Ok(ImportReport {
                dry_run: true,
                imported: plan.new.iter().map(|r| (r.line, None)).collect(),
                ..plan.report
            });
        }
        shared_db::transaction!(conn, LicenseError, |c| {
            let plan = self.plan(c, file).await?;
            let now = shared_db::now();
            let mut report = plan.report;
            for batch in plan.new.chunks(WRITE_BATCH) {
                for r in batch {
                    let row = self.row(r, now);
                    store::insert_license(c, &row).await?;
                    record(
                        c,
                        "license.imported",
                        "cli",
                        &row.id,
                        serde_json::json!({
                            "license_id": row.id, "product": row.product, "status": row.status, "policy_id": row.policy_id,
                        }),
                    )
                    .await?;
                    report.imported.push((r.line, Some(row.id)));
                }
                tokio::task::yield_now().await;
            }
            Ok(report)
        })
    }

    /// Sorts the file's lines into new licences and those whose key a licence already has
    /// (under the current secret or an earlier one).
    async fn plan<'f>(&self, conn: &mut DbConn, file: &'f ImportFile) -> Result<Plan<'f>, LicenseError> {
        let digests: Vec<Vec<String>> = file
            .records
            .iter()
            .map(|r| self.ring.digests(r.key.as_str().as_bytes()).map(|(_, d)| d).collect())
            .collect();
        let all: Vec<String> = digests.iter().flatten().cloned().collect();
        let mut existing: HashMap<String, LicenseRow> = HashMap::new();
        for chunk in all.chunks(LOOKUP_BATCH) {
            for (row, _, _) in store::find_by_digests(conn, chunk).await? {
                existing.insert(row.key_digest.clone(), row);
            }
        }
        // Every policy named must exist and be for the line's product.
        let mut policies: HashMap<&str, Option<String>> = HashMap::new();
        for r in &file.records {
            let Some(id) = r.policy_id.as_deref() else { continue };
            if !policies.contains_key(id) {
                let product = store::find_policy(conn, id).await?.map(|(p, _)| p.product);
                policies.insert(id, product);
            }
            match policies.get(id) {
                Some(Some(product)) if product == r.product.as_str() => {}
                Some(Some(product)) => {
                    return Err(invalid(
                        "policy_id",
                        format!("line {}: policy `{id}` is for product `{product}`", r.line),
                    ));
                }
                _ => {
                    return Err(invalid(
                        "policy_id",
                        format!("line {}: no policy has id `{id}`", r.line),
                    ));
                }
            }
        }
        let mut plan = Plan {
            new: Vec::new(),
            report: ImportReport::default(),
        };
        for (r, digests) in file.records.iter().zip(&digests) {
            match digests.iter().find_map(|d| existing.get(d)) {
                None => plan.new.push(r),
                Some(row) => match differences(r, row) {
                    d if d.is_empty() => plan.report.unchanged.push(r.line),
                    d => plan.report.differs.push((r.line, d)),
                },
            }
        }
        Ok(plan)
    }

    /// The stored licence for a line.
    fn row(&self, r: &ImportRecord, now: chrono::NaiveDateTime) -> LicenseRow {
        LicenseRow {
            id: shared_db::new_id(),
            product: r.product.as_str().to_owned(),
            name: r.name.clone(),
            owner_email: r.owner_email.clone(),
            status: r.status.as_str().to_owned(),
            key_prefix: r.key.prefix(),
            key_digest: self.digest(r.key.as_str()),
            created_at: r.created_at.unwrap_or(now),
            updated_at: now,
            expires_at: r.expires_at,
            max_machines: r.max_machines,
            entitlements: r.entitlements.clone(),
            metadata: r.metadata.clone(),
            require_machine: false,
            heartbeat_interval_secs: None,
            last_validated_at: None,
            policy_id: r.policy_id.clone(),
            heartbeat_cull: None,
            heartbeat_resurrection_secs: None,
            grace_period_secs: None,
            expiry_strategy: None,
            expiry_basis: None,
            duration_secs: None,
            expiry_started_at: None,
            grace_started_at: None,
        }
    }
}

/// What an import will do.
struct Plan<'f> {
    new: Vec<&'f ImportRecord>,
    report: ImportReport,
}

/// The fields in which a line differs from the licence its key already opens.
fn differences(r: &ImportRecord, row: &LicenseRow) -> Vec<&'static str> {
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
    [
        ("product", row.product == r.product.as_str()),
        ("name", row.name == r.name),
        ("owner_email", row.owner_email == r.owner_email),
        ("status", row.status == r.status.as_str()),
        ("expires_at", row.expires_at == r.expires_at),
        ("max_machines", row.max_machines == r.max_machines),
        ("entitlements", json(&row.entitlements) == json(&r.entitlements)),
        ("metadata", json(&row.metadata) == json(&r.metadata)),
        ("created_at", r.created_at.is_none_or(|t| t == row.created_at)),
        ("policy_id", row.policy_id == r.policy_id),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(field, _)| field)
    .collect()
}
