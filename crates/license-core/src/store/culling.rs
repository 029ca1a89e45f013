//! Silent machines: finding them, marking them dead, culling them and keeping the culled
//! ones for their resurrection window. Every change is conditional on the machine still
//! being silent, so that of several replicas sweeping at once exactly one acts on it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::{DbConn, DbError, with_conn};

use super::schema::{culled_machines, licenses, machines, policies};
use super::{LicenseRow, MachineRow, PolicyRow};
use crate::model::LicenseStatus;

/// A machine culled for silence, kept until `resurrect_until`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = culled_machines, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct CulledRow {
    pub(crate) id: String,
    pub(crate) license_id: String,
    pub(crate) fingerprint: String,
    pub(crate) name: Option<String>,
    pub(crate) platform: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) last_heartbeat_at: Option<NaiveDateTime>,
    pub(crate) culled_at: NaiveDateTime,
    pub(crate) resurrect_until: NaiveDateTime,
}

/// Silent since `cutoff`: no heartbeat (nor activation, without one) after it.
#[diesel::dsl::auto_type(no_type_alias)]
fn silent_since(cutoff: NaiveDateTime) -> _ {
    machines::last_heartbeat_at.le(cutoff).or(machines::last_heartbeat_at
        .is_null()
        .and(machines::created_at.le(cutoff))
        .nullable())
}

/// Every heartbeat interval a licence or a policy sets.
pub(crate) async fn heartbeat_intervals(conn: &mut DbConn) -> Result<Vec<i32>, DbError> {
    let mut all: Vec<i32> = with_conn!(conn, |c| licenses::table
        .filter(licenses::heartbeat_interval_secs.is_not_null())
        .select(licenses::heartbeat_interval_secs.assume_not_null())
        .distinct()
        .load(c)
        .await)?;
    let from_policies: Vec<i32> = with_conn!(conn, |c| policies::table
        .filter(policies::heartbeat_interval_secs.is_not_null())
        .select(policies::heartbeat_interval_secs.assume_not_null())
        .distinct()
        .load(c)
        .await)?;
    all.extend(from_policies);
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

/// Up to `limit` machines of active licences held to heartbeat interval `interval`
/// and silent since `cutoff` that are still to be acted on: not yet marked dead, or
/// dead under a licence that culls.
pub(crate) async fn silent_machines(
    conn: &mut DbConn,
    interval: i32,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<Vec<(MachineRow, LicenseRow, Option<PolicyRow>)>, DbError> {
    Ok(with_conn!(conn, |c| machines::table
        .inner_join(licenses::table.left_join(policies::table))
        .filter(licenses::status.eq(LicenseStatus::Active.as_str()))
        .filter(
            licenses::heartbeat_interval_secs
                .eq(interval)
                .or(licenses::heartbeat_interval_secs
                    .is_null()
                    .and(policies::heartbeat_interval_secs.eq(interval))
                    .nullable())
        )
        .filter(silent_since(cutoff))
        .filter(
            machines::dead_at
                .is_null()
                .nullable()
                .or(licenses::heartbeat_cull.eq(true).or(licenses::heartbeat_cull
                    .is_null()
                    .and(policies::heartbeat_cull.eq(true))))
        )
        .select((
            MachineRow::as_select(),
            LicenseRow::as_select(),
            Option::<PolicyRow>::as_select()
        ))
        .order(machines::id)
        .limit(limit)
        .load(c)
        .await)?)
}

/// The machines of licence `license_id` silent since `cutoff`.
pub(crate) async fn silent_machines_of(
    conn: &mut DbConn,
    license_id: &str,
    cutoff: NaiveDateTime,
) -> Result<Vec<MachineRow>, DbError> {
    Ok(with_conn!(conn, |c| machines::table
        .filter(machines::license_id.eq(license_id))
        .filter(silent_since(cutoff))
        .select(MachineRow::as_select())
        .load(c)
        .await)?)
}

/// Marks machine `id` dead at `now` if it is still silent since `cutoff` and not marked;
/// whether this call marked it.
pub(crate) async fn mark_dead(
    conn: &mut DbConn,
    id: &str,
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = with_conn!(conn, |c| diesel::update(
        machines::table
            .find(id)
            .filter(machines::dead_at.is_null())
            .filter(silent_since(cutoff))
    )
    .set(machines::dead_at.eq(Some(now)))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// Deletes machine `id` if it is still silent since `cutoff`; whether this call did.
pub(crate) async fn delete_silent(conn: &mut DbConn, id: &str, cutoff: NaiveDateTime) -> Result<bool, DbError> {
    let n = with_conn!(conn, |c| diesel::delete(
        machines::table.find(id).filter(silent_since(cutoff))
    )
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// Keeps a culled machine for its resurrection window (replacing an earlier one with
/// the same fingerprint).
pub(crate) async fn insert_culled(conn: &mut DbConn, row: &CulledRow) -> Result<(), DbError> {
    delete_culled(conn, &row.license_id, &row.fingerprint).await?;
    with_conn!(conn, |c| diesel::insert_into(culled_machines::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// The machine with `fingerprint` culled from licence `license_id` that may still come
/// back at `now`.
pub(crate) async fn find_culled(
    conn: &mut DbConn,
    license_id: &str,
    fingerprint: &str,
    now: NaiveDateTime,
) -> Result<Option<CulledRow>, DbError> {
    Ok(with_conn!(conn, |c| culled_machines::table
        .filter(culled_machines::license_id.eq(license_id))
        .filter(culled_machines::fingerprint.eq(fingerprint))
        .filter(culled_machines::resurrect_until.ge(now))
        .select(CulledRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Forgets the machine with `fingerprint` culled from licence `license_id`.
pub(crate) async fn delete_culled(conn: &mut DbConn, license_id: &str, fingerprint: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::delete(
        culled_machines::table
            .filter(culled_machines::license_id.eq(license_id))
            .filter(culled_machines::fingerprint.eq(fingerprint))
    )
    .execute(c)
    .await)?;
    Ok(())
}

/// Forgets culled machines whose resurrection window closed before `now`.
pub(crate) async fn purge_culled(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, DbError> {
    Ok(with_conn!(conn, |c| diesel::delete(
        culled_machines::table.filter(culled_machines::resurrect_until.lt(now))
    )
    .execute(c)
    .await)?)
}
