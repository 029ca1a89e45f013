//! Dead machines: a machine silent for longer than its licence's heartbeat interval is
//! dead (`machine.heartbeat.dead`, once per silence); under a licence that culls, it is
//! deactivated (`machine.culled`), freeing its seat, and kept for the resurrection
//! window, within which a heartbeat brings it back (`machine.resurrected`) if a seat is
//! free. The sweep does this for every licence (any replica, each machine once: every
//! change is conditional on the machine still being silent); an activation that finds
//! the limit reached culls its licence's dead machines first.

use chrono::NaiveDateTime;
use serde::Serialize;
use shared_db::DbConn;

use super::{LicenseService, record};
use crate::model::{LicenseError, Machine, ValidationCode};
use crate::store::{self, CulledRow, LicenseRow, MachineRow, Terms};

/// Machines one sweep query takes at most.
const SWEEP_BATCH: i64 = 200;
/// Batches per interval per sweep (the rest waits for the next sweep).
const SWEEP_ROUNDS: usize = 50;

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Machines found dead (and not culled).
    pub dead: usize,
    /// Machines culled.
    pub culled: usize,
    /// Culled machines forgotten after their resurrection window.
    pub forgotten: usize,
    /// `license.validation.failed` events written for failures held back.
    pub failure_events: usize,
}

/// What happened to one silent machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Marked dead.
    Dead,
    /// Culled.
    Culled,
    /// Another replica (or a heartbeat) got there first.
    Nothing,
}

impl LicenseService {
    /// Finds and handles every dead machine, forgets culled machines whose window has
    /// closed and records failed validations held back. The gateway runs it every
    /// [`crate::jobs::SWEEP_EVERY`].
    pub async fn sweep(&self) -> Result<SweepReport, LicenseError> {
        let mut report = SweepReport::default();
        let mut conn = self.pool.get().await?;
        for interval in store::heartbeat_intervals(&mut conn).await? {
            for _ in 0..SWEEP_ROUNDS {
                let now = shared_db::now();
                let cutoff = now - chrono::Duration::seconds(i64::from(interval));
                let batch = store::silent_machines(&mut conn, interval, cutoff, SWEEP_BATCH).await?;
                let full = batch.len() as i64 == SWEEP_BATCH;
                for (machine, license, policy) in batch {
                    let terms = license.terms(policy.as_ref());
                    match bury(&mut conn, &machine, &license, &terms, now).await? {
                        Fate::Dead => report.dead += 1,
                        Fate::Culled => report.culled += 1,
                        Fate::Nothing => {}
                    }
                }
                if !full {
                    break;
                }
            }
        }
        report.forgotten = store::purge_culled(&mut conn, shared_db::now()).await?;
        drop(conn);
        report.failure_events = self.flush_failures().await;
        Ok(report)
    }

    /// Brings back a machine culled from `license` within its resurrection window, if a
    /// seat is free.
    pub(super) async fn resurrect(
        &self,
        license: &LicenseRow,
        terms: &Terms,
        fingerprint: &str,
    ) -> Result<Machine, LicenseError> {
        if terms.heartbeat_resurrection_secs.is_none() {
            return Err(LicenseError::MachineNotFound);
        }
        let mut conn = self.pool.get().await?;
        let id = &license.id;
        let machine = shared_db::transaction!(conn, LicenseError, |c| {
            let now = shared_db::now();
            store::lock(c, id).await?.ok_or(LicenseError::NotFound)?;
            let culled = store::find_culled(c, id, fingerprint, now)
                .await?
                .ok_or(LicenseError::MachineNotFound)?;
            let count = store::count_machines(c, id).await?;
            if let Some(max) = terms.max_machines
                && count >= i64::from(max)
            {
                return Err(LicenseError::NotValid {
                    code: ValidationCode::TooManyMachines,
                    detail: format!(
                        "this machine was culled for silence, and no seat is free to bring it back ({count} of {max} are taken)"
                    ),
                });
            }
            let machine = MachineRow {
                id: culled.id.clone(),
                license_id: culled.license_id.clone(),
                fingerprint: culled.fingerprint.clone(),
                name: culled.name.clone(),
                platform: culled.platform.clone(),
                hostname: culled.hostname.clone(),
                created_at: culled.created_at,
                last_heartbeat_at: Some(now),
                dead_at: None,
            };
            store::delete_culled(c, id, fingerprint).await?;
            store::insert_machine(c, &machine).await?;
            let data = serde_json::json!({
                "machine_id": machine.id, "fingerprint": machine.fingerprint,
                "culled_at": shared_db::time::rfc3339_micros::format(&culled.culled_at),
            });
            record(c, "machine.resurrected", &format!("license:{id}"), id, data).await?;
            Ok(machine)
        })?;
        Ok(machine.into())
    }
}

/// Culls the dead machines of `license` (in the caller's transaction, the licence
/// locked); how many went.
pub(super) async fn cull_dead_of(
    c: &mut DbConn,
    license: &LicenseRow,
    terms: &Terms,
    now: NaiveDateTime,
) -> Result<usize, LicenseError> {
    let (Some(interval), true) = (terms.heartbeat_interval_secs, terms.heartbeat_cull) else {
        return Ok(0);
    };
    let cutoff = now - chrono::Duration::seconds(i64::from(interval));
    let mut culled = 0;
    for machine in store::silent_machines_of(c, &license.id, cutoff).await? {
        if cull(c, &machine, license, terms, cutoff, now).await? {
            culled += 1;
        }
    }
    Ok(culled)
}

/// Marks `machine` dead, or culls it when its licence culls, in one transaction.
async fn bury(
    conn: &mut DbConn,
    machine: &MachineRow,
    license: &LicenseRow,
    terms: &Terms,
    now: NaiveDateTime,
) -> Result<Fate, LicenseError> {
    let Some(interval) = terms.heartbeat_interval_secs else {
        return Ok(Fate::Nothing);
    };
    let cutoff = now - chrono::Duration::seconds(i64::from(interval));
    shared_db::transaction!(conn, LicenseError, |c| {
        if terms.heartbeat_cull {
            return Ok(if cull(c, machine, license, terms, cutoff, now).await? {
                Fate::Culled
            } else {
                Fate::Nothing
            });
        }
        if !store::mark_dead(c, &machine.id, cutoff, now).await? {
            return Ok(Fate::Nothing);
        }
        record_dead(c, machine, license, interval).await?;
        Ok(Fate::Dead)
    })
}

/// Deletes `machine` if it is still silent since `cutoff` and records its death (unless
/// recorded before) and its culling; kept for resurrection when the licence allows it.
async fn cull(
    c: &mut DbConn,
    machine: &MachineRow,
    license: &LicenseRow,
    terms: &Terms,
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, LicenseError> {
    if !store::delete_silent(c, &machine.id, cutoff).await? {
        return Ok(false);
    }
    if machine.dead_at.is_none() {
        record_dead(c, machine, license, terms.heartbeat_interval_secs.unwrap_or_default()).await?;
    }
    let resurrect_until = terms
        .heartbeat_resurrection_secs
        .map(|s| now + chrono::Duration::seconds(i64::from(s)));
    if let Some(until) = resurrect_until {
        store::insert_culled(
            c,
            &CulledRow {
                id: machine.id.clone(),
                license_id: machine.license_id.clone(),
                fingerprint: machine.fingerprint.clone(),
                name: machine.name.clone(),
                platform: machine.platform.clone(),
                hostname: machine.hostname.clone(),
                created_at: machine.created_at,
                last_heartbeat_at: machine.last_heartbeat_at,
                culled_at: now,
                resurrect_until: until,
            },
        )
        .await?;
    }
    let data = serde_json::json!({
        "machine_id": machine.id, "fingerprint": machine.fingerprint,
        "resurrect_until": resurrect_until.map(|t| shared_db::time::rfc3339_micros::format(&t)),
    });
    record(c, "machine.culled", "system", &license.id, data).await?;
    Ok(true)
}

async fn record_dead(
    c: &mut DbConn,
    machine: &MachineRow,
    license: &LicenseRow,
    interval: i32,
) -> Result<(), LicenseError> {
    let data = serde_json::json!({
        "machine_id": machine.id, "fingerprint": machine.fingerprint,
        "last_heartbeat_at": machine.last_heartbeat_at.map(|t| shared_db::time::rfc3339_micros::format(&t)),
        "heartbeat_interval_secs": interval,
    });
    record(c, "machine.heartbeat.dead", "system", &license.id, data).await
}
