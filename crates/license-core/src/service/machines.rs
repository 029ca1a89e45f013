//! Machines: activation within the licence's limit, deactivation, heartbeats and
//! removal by an administrator.

use super::culling::cull_dead_of;
use super::validate::refuse_unusable;
use super::{LicenseService, record};
use crate::model::{
    ActivateRequest, Deactivated, ExpiryBasis, LicenseError, MachineAnswer, MachineRequest, ValidationCode,
    check_fingerprint, check_nonce, check_optional,
};
use crate::store::{self, MachineRow};
use shared_db::DbConn;

impl LicenseService {
    /// Activates a machine on the licence the key opens, within its machine limit (dead
    /// machines are culled first when the limit is reached and the licence culls). The
    /// first activation starts the clock of a licence whose expiry basis is
    /// `first_activation`.
    pub async fn activate(&self, req: &ActivateRequest) -> Result<MachineAnswer, LicenseError> {
        let nonce = check_nonce(&req.nonce)?;
        let fingerprint = check_fingerprint(&req.fingerprint)?;
        let name = check_optional("name", &req.name, 200)?;
        let platform = check_optional("platform", &req.platform, 100)?;
        let hostname = check_optional("hostname", &req.hostname, 255)?;
        let (mut row, _, policy) = self.open(&req.key).await?;
        let terms = row.terms(policy.as_ref());
        let mut conn = self.pool.get().await?;
        let now = shared_db::now();
        refuse_unusable(&row, &terms, now)?;
        let license_id = &row.id;
        let terms_ref = &terms;
        let machine = shared_db::transaction!(conn, LicenseError, |c| {
            // Lock the licence so concurrent activations count machines one at a time.
            let row = store::lock(c, license_id).await?.ok_or(LicenseError::NotFound)?;
            if store::find_machine(c, &row.id, &fingerprint).await?.is_some() {
                return Err(LicenseError::MachineExists);
            }
            let mut count = store::count_machines(c, &row.id).await?;
            if let Some(max) = terms_ref.max_machines
                && count >= i64::from(max)
                && cull_dead_of(c, &row, terms_ref, now).await? > 0
            {
                count = store::count_machines(c, &row.id).await?;
            }
            if let Some(max) = terms_ref.max_machines
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
                dead_at: None,
            };
            // Activated afresh: a culled machine of the same fingerprint is forgotten.
            store::delete_culled(c, &row.id, &fingerprint).await?;
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
        drop(conn);
        if terms.expiry_basis == ExpiryBasis::FirstActivation {
            self.start_clock(&mut row, &terms, now).await?;
        }
        Ok(MachineAnswer {
            machine: machine.into(),
            nonce,
        })
    }

    /// Removes a machine from the licence the key opens. With a `nonce` the answer
    /// says so (and echoes it); without, there is nothing to say.
    pub async fn deactivate(&self, req: &MachineRequest) -> Result<Option<Deactivated>, LicenseError> {
        let nonce = check_nonce(&req.nonce)?;
        let (row, _, _) = self.open(&req.key).await?;
        let machine = self
            .find_machine(&row.id, req.fingerprint.trim())
            .await?
            .ok_or(LicenseError::MachineNotFound)?;
        let mut conn = self.pool.get().await?;
        delete_machine(&mut conn, &row.id, &machine, &format!("license:{}", row.id)).await?;
        Ok(nonce.map(|nonce| Deactivated {
            deactivated: true,
            fingerprint: machine.fingerprint,
            nonce,
        }))
    }

    /// Records that the machine is alive. A revoked, suspended or expired licence answers
    /// as activation and validation do (its code), and nothing is recorded: a client that
    /// only heartbeats learns of it at its next beat. A machine culled for silence comes
    /// back within the licence's resurrection window if a seat is free.
    pub async fn heartbeat(&self, req: &MachineRequest) -> Result<MachineAnswer, LicenseError> {
        let nonce = check_nonce(&req.nonce)?;
        let (row, _, policy) = self.open(&req.key).await?;
        let terms = row.terms(policy.as_ref());
        refuse_unusable(&row, &terms, shared_db::now())?;
        let fingerprint = req.fingerprint.trim();
        let Some(mut machine) = self.find_machine(&row.id, fingerprint).await? else {
            let machine = self.resurrect(&row, &terms, fingerprint).await?;
            return Ok(MachineAnswer { machine, nonce });
        };
        let mut conn = self.pool.get().await?;
        let now = shared_db::now();
        shared_db::retrying!(store::set_heartbeat(&mut conn, &machine.id, now).await)?;
        machine.last_heartbeat_at = Some(now);
        machine.dead_at = None;
        Ok(MachineAnswer {
            machine: machine.into(),
            nonce,
        })
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
