//! The licence tables: the only place that touches diesel. Plain functions over a
//! connection, returning rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::paging::Order;
use shared_db::{DbConn, DbError, with_conn};

use crate::model::{License, LicenseError, LicenseFilter, LicenseStatus, Machine, Product};
use schema::{licenses, machines};

mod schema;
mod signing;

pub(crate) use signing::*;

impl From<diesel::result::Error> for LicenseError {
    fn from(e: diesel::result::Error) -> Self {
        LicenseError::Db(e.into())
    }
}

/// A stored licence.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = licenses, treat_none_as_null = true, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct LicenseRow {
    pub(crate) id: String,
    pub(crate) product: String,
    pub(crate) name: String,
    pub(crate) owner_email: String,
    pub(crate) status: String,
    pub(crate) key_prefix: String,
    pub(crate) key_digest: String,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
    pub(crate) expires_at: Option<NaiveDateTime>,
    pub(crate) max_machines: Option<i32>,
    pub(crate) entitlements: String,
    pub(crate) metadata: String,
    pub(crate) require_machine: bool,
    pub(crate) heartbeat_interval_secs: Option<i32>,
    pub(crate) last_validated_at: Option<NaiveDateTime>,
}

/// A stored machine.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = machines, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct MachineRow {
    pub(crate) id: String,
    pub(crate) license_id: String,
    pub(crate) fingerprint: String,
    pub(crate) name: Option<String>,
    pub(crate) platform: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) last_heartbeat_at: Option<NaiveDateTime>,
}

impl From<MachineRow> for Machine {
    fn from(r: MachineRow) -> Self {
        Machine {
            id: r.id,
            license_id: r.license_id,
            fingerprint: r.fingerprint,
            name: r.name,
            platform: r.platform,
            hostname: r.hostname,
            created_at: r.created_at.and_utc(),
            last_heartbeat_at: r.last_heartbeat_at.map(|t| t.and_utc()),
        }
    }
}

/// The licence's machine count as a correlated subquery, so a licence and its count
/// come back in one statement (a typed expression, unlike raw SQL, keeps the statement
/// in the driver's prepared-statement cache).
#[diesel::dsl::auto_type(no_type_alias)]
pub(crate) fn machine_count() -> _ {
    machines::table
        .filter(machines::license_id.eq(licenses::id))
        .count()
        .single_value()
        .assume_not_null()
}

impl LicenseRow {
    pub(crate) fn status(&self) -> LicenseStatus {
        LicenseStatus::parse(&self.status).unwrap_or(LicenseStatus::Revoked)
    }

    pub(crate) fn into_license(self, machines_count: i64) -> Result<License, LicenseError> {
        let corrupt = |what: &str| LicenseError::Db(DbError::Corrupt(format!("licence {}: {what}", self.id)));
        Ok(License {
            product: Product::parse(&self.product).ok_or_else(|| corrupt("product"))?,
            status: match LicenseStatus::parse(&self.status).ok_or_else(|| corrupt("status"))? {
                LicenseStatus::Active if self.expires_at.is_some_and(|t| t <= shared_db::now()) => {
                    LicenseStatus::Expired
                }
                stored => stored,
            },
            entitlements: serde_json::from_str(&self.entitlements).map_err(|_| corrupt("entitlements"))?,
            metadata: serde_json::from_str(&self.metadata).map_err(|_| corrupt("metadata"))?,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
            expires_at: self.expires_at.map(|t| t.and_utc()),
            last_validated_at: self.last_validated_at.map(|t| t.and_utc()),
            machines_count,
            id: self.id,
            name: self.name,
            owner_email: self.owner_email,
            key_prefix: self.key_prefix,
            max_machines: self.max_machines,
            require_machine: self.require_machine,
            heartbeat_interval_secs: self.heartbeat_interval_secs,
        })
    }
}

pub(crate) async fn find(conn: &mut DbConn, id: &str) -> Result<Option<(LicenseRow, i64)>, LicenseError> {
    Ok(with_conn!(conn, |c| licenses::table
        .find(id)
        .select((LicenseRow::as_select(), machine_count()))
        .first(c)
        .await
        .optional())?)
}

/// Pads a batch to the next power of two (repeating its last key), so a connection
/// prepares at most a handful of statement shapes and keeps them cached.
fn padded<T>(keys: &[T]) -> impl Iterator<Item = &T> {
    let len = keys.len().next_power_of_two();
    keys.iter()
        .chain(std::iter::repeat_n(keys.last(), len - keys.len()).flatten())
}

/// The licences with any of `digests`, with their machine counts, in one statement.
pub(crate) async fn find_by_digests(conn: &mut DbConn, digests: &[String]) -> Result<Vec<(LicenseRow, i64)>, DbError> {
    macro_rules! load {
        ($c:expr, $db:ty) => {{
            let mut q = licenses::table
                .select((LicenseRow::as_select(), machine_count()))
                .into_boxed::<'_, $db>();
            for d in padded(digests) {
                q = q.or_filter(licenses::key_digest.eq(d));
            }
            q.load::<(LicenseRow, i64)>($c).await?
        }};
    }
    Ok(match conn {
        DbConn::Mysql(c) => load!(c, diesel::mysql::Mysql),
        DbConn::Sqlite(c) => load!(c, diesel::sqlite::Sqlite),
    })
}

/// The machines matching any of the (licence id, fingerprint) `pairs`, in one statement.
pub(crate) async fn find_machines(conn: &mut DbConn, pairs: &[(String, String)]) -> Result<Vec<MachineRow>, DbError> {
    macro_rules! load {
        ($c:expr, $db:ty) => {{
            let mut q = machines::table.select(MachineRow::as_select()).into_boxed::<'_, $db>();
            for (license_id, fingerprint) in padded(pairs) {
                q = q.or_filter(
                    machines::license_id
                        .eq(license_id)
                        .and(machines::fingerprint.eq(fingerprint)),
                );
            }
            q.load::<MachineRow>($c).await?
        }};
    }
    Ok(match conn {
        DbConn::Mysql(c) => load!(c, diesel::mysql::Mysql),
        DbConn::Sqlite(c) => load!(c, diesel::sqlite::Sqlite),
    })
}

pub(crate) async fn find_by_digest(conn: &mut DbConn, digest: &str) -> Result<Option<(LicenseRow, i64)>, LicenseError> {
    Ok(with_conn!(conn, |c| licenses::table
        .filter(licenses::key_digest.eq(digest))
        .select((LicenseRow::as_select(), machine_count()))
        .first(c)
        .await
        .optional())?)
}

/// The licence row, locked until the transaction ends (MySQL `FOR UPDATE`; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers).
pub(crate) async fn lock(conn: &mut DbConn, id: &str) -> Result<Option<LicenseRow>, LicenseError> {
    Ok(match conn {
        DbConn::Mysql(c) => licenses::table
            .find(id)
            .select(LicenseRow::as_select())
            .for_update()
            .first(c)
            .await
            .optional()?,
        DbConn::Sqlite(c) => licenses::table
            .find(id)
            .select(LicenseRow::as_select())
            .first(c)
            .await
            .optional()?,
    })
}

pub(crate) async fn count_machines(conn: &mut DbConn, license_id: &str) -> Result<i64, LicenseError> {
    Ok(with_conn!(conn, |c| machines::table
        .filter(machines::license_id.eq(license_id))
        .count()
        .get_result::<i64>(c)
        .await)?)
}

pub(crate) async fn find_machine(
    conn: &mut DbConn,
    license_id: &str,
    fingerprint: &str,
) -> Result<Option<MachineRow>, LicenseError> {
    Ok(with_conn!(conn, |c| machines::table
        .filter(machines::license_id.eq(license_id))
        .filter(machines::fingerprint.eq(fingerprint))
        .select(MachineRow::as_select())
        .first(c)
        .await
        .optional())?)
}
/// Stores a new licence.
pub(crate) async fn insert_license(conn: &mut DbConn, row: &LicenseRow) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(licenses::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// Stores every column of a changed licence.
pub(crate) async fn update_license(conn: &mut DbConn, row: &LicenseRow) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(licenses::table.find(&row.id))
        .set(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// Replaces licence `id`'s key digest (re-keyed under the current secret).
pub(crate) async fn set_key_digest(conn: &mut DbConn, id: &str, digest: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(licenses::table.find(id))
        .set(licenses::key_digest.eq(digest))
        .execute(c)
        .await)?;
    Ok(())
}

/// Notes when licence `id` was last validated.
pub(crate) async fn set_last_validated(conn: &mut DbConn, id: &str, at: NaiveDateTime) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(licenses::table.find(id))
        .set(licenses::last_validated_at.eq(Some(at)))
        .execute(c)
        .await)?;
    Ok(())
}

/// Licences matching `filter`, with their machine counts, in `order` after `after`: at
/// most `limit` rows.
pub(crate) async fn list_licenses(
    conn: &mut DbConn,
    filter: &LicenseFilter,
    order: Order,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<(LicenseRow, i64)>, DbError> {
    Ok(with_conn!(conn, |c| {
        let mut q = licenses::table
            .select((LicenseRow::as_select(), machine_count()))
            .into_boxed();
        if let Some(p) = filter.product {
            q = q.filter(licenses::product.eq(p.as_str()));
        }
        // `expired` is not stored: it is an active licence past its expiry.
        let now = shared_db::now();
        match filter.status {
            Some(LicenseStatus::Expired) => {
                q = q.filter(
                    licenses::status
                        .eq(LicenseStatus::Active.as_str())
                        .and(licenses::expires_at.le(now)),
                );
            }
            Some(LicenseStatus::Active) => {
                q = q.filter(
                    licenses::status
                        .eq(LicenseStatus::Active.as_str())
                        .and(licenses::expires_at.is_null().or(licenses::expires_at.gt(now))),
                );
            }
            Some(s) => q = q.filter(licenses::status.eq(s.as_str())),
            None => {}
        }
        if let Some(o) = &filter.owner_email {
            q = q.filter(licenses::owner_email.eq(o.trim()));
        }
        if let Some(t) = filter.expires_before {
            q = q.filter(licenses::expires_at.lt(t.naive_utc()));
        }
        shared_db::page_in_order!(q, licenses::id, order, after)
            .limit(limit)
            .load(c)
            .await
    })?)
}

/// Stores a new machine.
pub(crate) async fn insert_machine(conn: &mut DbConn, machine: &MachineRow) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(machines::table)
        .values(machine)
        .execute(c)
        .await)?;
    Ok(())
}

/// Deletes machine `id`.
pub(crate) async fn delete_machine(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::delete(machines::table.find(id)).execute(c).await)?;
    Ok(())
}

/// Notes machine `id`'s heartbeat.
pub(crate) async fn set_heartbeat(conn: &mut DbConn, id: &str, at: NaiveDateTime) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(machines::table.find(id))
        .set(machines::last_heartbeat_at.eq(Some(at)))
        .execute(c)
        .await)?;
    Ok(())
}

/// Licence `license_id`'s machines in `order` after `after`: at most `limit` rows.
pub(crate) async fn list_machines(
    conn: &mut DbConn,
    license_id: &str,
    order: Order,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<MachineRow>, DbError> {
    Ok(with_conn!(conn, |c| {
        let q = machines::table
            .filter(machines::license_id.eq(license_id))
            .select(MachineRow::as_select())
            .into_boxed();
        shared_db::page_in_order!(q, machines::id, order, after)
            .limit(limit)
            .load(c)
            .await
    })?)
}

/// Machine `machine_id` of licence `license_id`.
pub(crate) async fn machine_by_id(
    conn: &mut DbConn,
    license_id: &str,
    machine_id: &str,
) -> Result<Option<MachineRow>, DbError> {
    Ok(with_conn!(conn, |c| machines::table
        .filter(machines::license_id.eq(license_id))
        .filter(machines::id.eq(machine_id))
        .select(MachineRow::as_select())
        .first(c)
        .await
        .optional())?)
}
