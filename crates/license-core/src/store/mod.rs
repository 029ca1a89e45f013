//! The licence tables: the only place that touches diesel. Plain functions over a
//! connection, returning rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::paging::Order;
use shared_db::{DbConn, DbError, with_conn};

use crate::model::{
    ExpiryBasis, ExpiryStrategy, License, LicenseError, LicenseFilter, LicenseStatus, Machine, Product, show_secs,
};
use schema::{licenses, machines, policies};

mod culling;
mod policy;
mod schema;
mod signing;

pub(crate) use culling::*;
pub(crate) use policy::*;
pub(crate) use signing::*;

/// A licence as read: its row, its machine count and its policy (if it names one).
pub(crate) type Held = (LicenseRow, i64, Option<PolicyRow>);

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
    pub(crate) policy_id: Option<String>,
    pub(crate) heartbeat_cull: Option<bool>,
    pub(crate) heartbeat_resurrection_secs: Option<i32>,
    pub(crate) grace_period_secs: Option<i64>,
    pub(crate) expiry_strategy: Option<String>,
    pub(crate) expiry_basis: Option<String>,
    pub(crate) duration_secs: Option<i64>,
    pub(crate) expiry_started_at: Option<NaiveDateTime>,
    pub(crate) grace_started_at: Option<NaiveDateTime>,
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
    pub(crate) dead_at: Option<NaiveDateTime>,
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

/// The terms a licence is held to: its own, else its policy's, else the defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Terms {
    pub(crate) max_machines: Option<i32>,
    /// Either the licence or its policy asks for it.
    pub(crate) require_machine: bool,
    pub(crate) heartbeat_interval_secs: Option<i32>,
    pub(crate) heartbeat_cull: bool,
    pub(crate) heartbeat_resurrection_secs: Option<i32>,
    pub(crate) grace_period_secs: Option<i64>,
    pub(crate) expiry_strategy: ExpiryStrategy,
    pub(crate) expiry_basis: ExpiryBasis,
    pub(crate) duration_secs: Option<i64>,
    /// The licence's entitlements and its policy's, sorted, without repeats.
    pub(crate) entitlements: Vec<String>,
}

impl Terms {
    /// When the grace period of a licence expiring at `expires_at` ends.
    pub(crate) fn grace_end(&self, expires_at: Option<NaiveDateTime>) -> Option<NaiveDateTime> {
        Some(expires_at? + chrono::Duration::seconds(self.grace_period_secs?))
    }
}

impl LicenseRow {
    pub(crate) fn status(&self) -> LicenseStatus {
        LicenseStatus::parse(&self.status).unwrap_or(LicenseStatus::Revoked)
    }

    /// The terms this licence is held to under `policy` (the one it names, if any).
    pub(crate) fn terms(&self, policy: Option<&PolicyRow>) -> Terms {
        let mut entitlements: Vec<String> = serde_json::from_str(&self.entitlements).unwrap_or_default();
        if let Some(p) = policy {
            entitlements.extend(serde_json::from_str::<Vec<String>>(&p.entitlements).unwrap_or_default());
            entitlements.sort();
            entitlements.dedup();
        }
        Terms {
            max_machines: self.max_machines.or(policy.and_then(|p| p.max_machines)),
            require_machine: self.require_machine || policy.is_some_and(|p| p.require_machine),
            heartbeat_interval_secs: self
                .heartbeat_interval_secs
                .or(policy.and_then(|p| p.heartbeat_interval_secs)),
            heartbeat_cull: self
                .heartbeat_cull
                .or(policy.map(|p| p.heartbeat_cull))
                .unwrap_or(false),
            heartbeat_resurrection_secs: self
                .heartbeat_resurrection_secs
                .or(policy.and_then(|p| p.heartbeat_resurrection_secs)),
            grace_period_secs: self.grace_period_secs.or(policy.and_then(|p| p.grace_period_secs)),
            expiry_strategy: self
                .expiry_strategy
                .as_deref()
                .or(policy.map(|p| p.expiry_strategy.as_str()))
                .and_then(ExpiryStrategy::parse)
                .unwrap_or_default(),
            expiry_basis: self
                .expiry_basis
                .as_deref()
                .or(policy.map(|p| p.expiry_basis.as_str()))
                .and_then(ExpiryBasis::parse)
                .unwrap_or_default(),
            duration_secs: self.duration_secs.or(policy.and_then(|p| p.duration_secs)),
            entitlements,
        }
    }

    /// The terms the licence sets itself while it names a policy.
    fn overrides(&self) -> Vec<&'static str> {
        if self.policy_id.is_none() {
            return Vec::new();
        }
        [
            ("max_machines", self.max_machines.is_some()),
            ("require_machine", self.require_machine),
            ("heartbeat_interval_secs", self.heartbeat_interval_secs.is_some()),
            ("heartbeat_cull", self.heartbeat_cull.is_some()),
            (
                "heartbeat_resurrection_secs",
                self.heartbeat_resurrection_secs.is_some(),
            ),
            ("grace_period", self.grace_period_secs.is_some()),
            ("expiry_strategy", self.expiry_strategy.is_some()),
            ("expiry_basis", self.expiry_basis.is_some()),
            ("duration", self.duration_secs.is_some()),
            ("entitlements", self.entitlements != "[]"),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect()
    }

    pub(crate) fn into_license(self, machines_count: i64, policy: Option<&PolicyRow>) -> Result<License, LicenseError> {
        let corrupt = |what: &str| LicenseError::Db(DbError::Corrupt(format!("licence {}: {what}", self.id)));
        let terms = self.terms(policy);
        let overrides = self.overrides();
        // A policy id that names no policy (deleted under it on a backend without the
        // foreign key) is shown as it is stored; the terms are then the licence's own.
        Ok(License {
            product: Product::parse(&self.product).ok_or_else(|| corrupt("product"))?,
            status: match LicenseStatus::parse(&self.status).ok_or_else(|| corrupt("status"))? {
                LicenseStatus::Active if self.expires_at.is_some_and(|t| t <= shared_db::now()) => {
                    LicenseStatus::Expired
                }
                stored => stored,
            },
            metadata: serde_json::from_str(&self.metadata).map_err(|_| corrupt("metadata"))?,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
            expires_at: self.expires_at.map(|t| t.and_utc()),
            last_validated_at: self.last_validated_at.map(|t| t.and_utc()),
            grace_ends_at: terms.grace_end(self.expires_at).map(|t| t.and_utc()),
            grace_period: show_secs(terms.grace_period_secs),
            duration: show_secs(terms.duration_secs),
            expiry_started_at: self.expiry_started_at.map(|t| t.and_utc()),
            machines_count,
            max_machines: terms.max_machines,
            require_machine: terms.require_machine,
            heartbeat_interval_secs: terms.heartbeat_interval_secs,
            heartbeat_cull: terms.heartbeat_cull,
            heartbeat_resurrection_secs: terms.heartbeat_resurrection_secs,
            expiry_strategy: terms.expiry_strategy,
            expiry_basis: terms.expiry_basis,
            entitlements: terms.entitlements,
            overrides,
            policy_id: self.policy_id,
            id: self.id,
            name: self.name,
            owner_email: self.owner_email,
            key_prefix: self.key_prefix,
        })
    }
}

/// Licences joined to their policies, selecting a [`Held`].
#[diesel::dsl::auto_type(no_type_alias)]
fn held() -> _ {
    licenses::table.left_join(policies::table)
}

pub(crate) async fn find(conn: &mut DbConn, id: &str) -> Result<Option<Held>, LicenseError> {
    Ok(with_conn!(conn, |c| held()
        .filter(licenses::id.eq(id))
        .select((
            LicenseRow::as_select(),
            machine_count(),
            Option::<PolicyRow>::as_select()
        ))
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
pub(crate) async fn find_by_digests(conn: &mut DbConn, digests: &[String]) -> Result<Vec<Held>, DbError> {
    macro_rules! load {
        ($c:expr, $db:ty) => {{
            let mut q = held()
                .select((
                    LicenseRow::as_select(),
                    machine_count(),
                    Option::<PolicyRow>::as_select(),
                ))
                .into_boxed::<'_, $db>();
            for d in padded(digests) {
                q = q.or_filter(licenses::key_digest.eq(d));
            }
            q.load::<Held>($c).await?
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

pub(crate) async fn find_by_digest(conn: &mut DbConn, digest: &str) -> Result<Option<Held>, LicenseError> {
    Ok(with_conn!(conn, |c| held()
        .filter(licenses::key_digest.eq(digest))
        .select((
            LicenseRow::as_select(),
            machine_count(),
            Option::<PolicyRow>::as_select()
        ))
        .first(c)
        .await
        .optional())?)
}

/// The licence row, locked until the transaction ends (MySQL `FOR UPDATE`; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers).
pub(crate) async fn lock(conn: &mut DbConn, id: &str) -> Result<Option<LicenseRow>, LicenseError> {
    Ok(shared_db::lock_first!(
        conn,
        licenses::table.find(id).select(LicenseRow::as_select())
    )?)
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

/// Starts licence `id`'s expiry clock at `now` (to end at `expires_at`) unless it has
/// started; whether this call started it.
pub(crate) async fn start_clock(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = with_conn!(conn, |c| diesel::update(
        licenses::table.find(id).filter(licenses::expiry_started_at.is_null())
    )
    .set((
        licenses::expiry_started_at.eq(Some(now)),
        licenses::expires_at.eq(Some(expires_at)),
        licenses::updated_at.eq(now),
    ))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// Notes that licence `id`'s grace period began at `now` unless it was noted; whether
/// this call noted it.
pub(crate) async fn start_grace(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, DbError> {
    let n = with_conn!(conn, |c| diesel::update(
        licenses::table.find(id).filter(licenses::grace_started_at.is_null())
    )
    .set(licenses::grace_started_at.eq(Some(now)))
    .execute(c)
    .await)?;
    Ok(n == 1)
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
) -> Result<Vec<Held>, DbError> {
    Ok(with_conn!(conn, |c| {
        let mut q = held()
            .select((
                LicenseRow::as_select(),
                machine_count(),
                Option::<PolicyRow>::as_select(),
            ))
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

/// How many licences hold each stored status, and how many active ones are past their
/// expiry at `now` (shown as `expired`).
pub(crate) async fn count_by_status(
    conn: &mut DbConn,
    now: NaiveDateTime,
) -> Result<(Vec<(String, i64)>, i64), DbError> {
    use diesel::dsl::count_star;
    let stored = with_conn!(conn, |c| licenses::table
        .group_by(licenses::status)
        .select((licenses::status, count_star()))
        .load::<(String, i64)>(c)
        .await)?;
    let expired = with_conn!(conn, |c| licenses::table
        .filter(
            licenses::status
                .eq(LicenseStatus::Active.as_str())
                .and(licenses::expires_at.le(now))
        )
        .select(count_star())
        .first::<i64>(c)
        .await)?;
    Ok((stored, expired))
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

/// Notes machine `id`'s heartbeat (it is alive again if it was dead).
pub(crate) async fn set_heartbeat(conn: &mut DbConn, id: &str, at: NaiveDateTime) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(machines::table.find(id))
        .set((
            machines::last_heartbeat_at.eq(Some(at)),
            machines::dead_at.eq(None::<NaiveDateTime>),
        ))
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
