//! Machines: activation within the licence's limit, deactivation, heartbeats and
//! removal by an administrator.

use super::validate::refuse_unusable;
use super::{LicenseService, record};
use crate::model::{
    ActivateRequest, LicenseError, Machine, MachineRequest, ValidationCode, check_fingerprint, check_optional,
};
use crate::store::{self, MachineRow};
use shared_db::DbConn;

impl LicenseService {
    /// Activates a machine on the licence the key opens, within its machine limit.
    pub async fn activate(&self, req: &ActivateRequest) -> Result<Machine, LicenseError> {
        let fingerprint = check_fingerprint(&req.fingerprint)?;
        let name = check_optional("name", &req.name, 200)?;
        let platform = check_optional("platform", &req.platform, 100)?;
        let hostname = check_optional("hostname", &req.hostname, 255)?;
        let (row, _) = self.open(&req.key).await?;
        let mut conn = self.pool.get().await?;
        let now = shared_db::now();
        refuse_unusable(&row, now)?;
        let license_id = &row.id;
        let machine = shared_db::transaction!(conn, LicenseError, |c| {
            // Lock the licence so concurrent activations count machines one at a time.
            let row = store::lock(c, license_id).await?.ok_or(LicenseError::NotFound)?;
            if store::find_machine(c, &row.id, &fingerprint).await?.is_some() {
                return Err(LicenseError::MachineExists);
            }
            let count = store::count_machines(c, &row.id).await?;
            if let Some(max) = row.max_machines
                && count >= i64::from(max)
            {
                return Err(LicenseError::NotValid {
                    code: ValidationCode::TooManyMachines,
                    detail: format!("the licence allows {max} machine(s) and {count} are activated"),
                });
            }
            let machine = MachineRow {
                id: shared_db::new_id(),
                license_id: row.id.clone(),
                fingerprint: fingerprint.clone(),
                name: name.clone(),
                platform: platform.clone(),
                hostname: hostname.clone(),
                created_at: now,
                last_heartbeat_at: Some(now),
            };
            store::insert_machine(c, &machine).await?;
            let actor = format!("license:{}", row.id);
            record(
                c,
                "license.activated",
                &actor,
                &row.id,
                serde_json::json!({
                    "machine_id": machine.id, "fingerprint": machine.fingerprint,
                }),
            )
            .await?;
            Ok(machine)
        })?;
        Ok(machine.into())
    }

    /// Removes a machine from the licence the key opens.
    pub async fn deactivate(&self, req: &MachineRequest) -> Result<(), LicenseError> {
        let (row, _) = self.open(&req.key).await?;
        let machine = self
            .find_machine(&row.id, req.fingerprint.trim())
            .await?
            .ok_or(LicenseError::MachineNotFound)?;
        let mut conn = self.pool.get().await?;
        delete_machine(&mut conn, &row.id, &machine, &format!("license:{}", row.id)).await
    }

    /// Records that the machine is alive. A revoked, suspended or expired licence answers
    /// as activation and validation do (its code), and nothing is recorded: a client that
    /// only heartbeats learns of it at its next beat.
    pub async fn heartbeat(&self, req: &MachineRequest) -> Result<Machine, LicenseError> {
        let (row, _) = self.open(&req.key).await?;
        refuse_unusable(&row, shared_db::now())?;
        let mut machine = self
            .find_machine(&row.id, req.fingerprint.trim())
            .await?
            .ok_or(LicenseError::MachineNotFound)?;
        let mut conn = self.pool.get().await?;
        let now = shared_db::now();
        shared_db::retrying!(store::set_heartbeat(&mut conn, &machine.id, now).await)?;
        machine.last_heartbeat_at = Some(now);
        Ok(machine.into())
    }

    /// Removes machine `machine_id` from licence `id` (administration).
    pub async fn remove_machine(&self, id: &str, machine_id: &str, actor: &str) -> Result<(), LicenseError> {
        let mut conn = self.pool.get().await?;
        let machine = store::machine_by_id(&mut conn, id, machine_id)
            .await?
            .ok_or(LicenseError::MachineNotFound)?;
        delete_machine(&mut conn, id, &machine, actor).await
    }
}

/// Deletes `machine` and records `license.deactivated`, in one transaction.
async fn delete_machine(
    conn: &mut DbConn,
    license_id: &str,
    machine: &MachineRow,
    actor: &str,
) -> Result<(), LicenseError> {
    shared_db::transaction!(conn, LicenseError, |c| {
        store::delete_machine(c, &machine.id).await?;
        record(
            c,
            "license.deactivated",
            actor,
            license_id,
            serde_json::json!({
                "machine_id": machine.id, "fingerprint": machine.fingerprint,
            }),
        )
        .await
    })
}
