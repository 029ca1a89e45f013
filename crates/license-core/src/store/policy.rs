//! Stored policies.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::paging::Order;
use shared_db::{DbConn, DbError, with_conn};

use super::schema::{licenses, policies};
use crate::model::{ExpiryBasis, ExpiryStrategy, LicenseError, Policy, Product, show_secs};

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = policies, treat_none_as_null = true, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct PolicyRow {
    pub(crate) id: String,
    pub(crate) product: String,
    pub(crate) name: String,
    pub(crate) max_machines: Option<i32>,
    pub(crate) require_machine: bool,
    pub(crate) heartbeat_interval_secs: Option<i32>,
    pub(crate) heartbeat_cull: bool,
    pub(crate) heartbeat_resurrection_secs: Option<i32>,
    pub(crate) grace_period_secs: Option<i64>,
    pub(crate) expiry_strategy: String,
    pub(crate) expiry_basis: String,
    pub(crate) duration_secs: Option<i64>,
    pub(crate) entitlements: String,
    pub(crate) metadata: String,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

impl PolicyRow {
    pub(crate) fn into_policy(self, licenses_count: i64) -> Result<Policy, LicenseError> {
        let corrupt = |what: &str| LicenseError::Db(DbError::Corrupt(format!("policy {}: {what}", self.id)));
        Ok(Policy {
            product: Product::parse(&self.product).ok_or_else(|| corrupt("product"))?,
            expiry_strategy: ExpiryStrategy::parse(&self.expiry_strategy).ok_or_else(|| corrupt("expiry_strategy"))?,
            expiry_basis: ExpiryBasis::parse(&self.expiry_basis).ok_or_else(|| corrupt("expiry_basis"))?,
            entitlements: serde_json::from_str(&self.entitlements).map_err(|_| corrupt("entitlements"))?,
            metadata: serde_json::from_str(&self.metadata).map_err(|_| corrupt("metadata"))?,
            grace_period: show_secs(self.grace_period_secs),
            duration: show_secs(self.duration_secs),
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
            licenses_count,
            id: self.id,
            name: self.name,
            max_machines: self.max_machines,
            require_machine: self.require_machine,
            heartbeat_interval_secs: self.heartbeat_interval_secs,
            heartbeat_cull: self.heartbeat_cull,
            heartbeat_resurrection_secs: self.heartbeat_resurrection_secs,
        })
    }
}

/// How many licences name the policy, as a correlated subquery.
#[diesel::dsl::auto_type(no_type_alias)]
fn licenses_count() -> _ {
    licenses::table
        .filter(licenses::policy_id.eq(policies::id.nullable()))
        .count()
        .single_value()
        .assume_not_null()
}

/// Policy `id` and how many licences name it.
pub(crate) async fn find_policy(conn: &mut DbConn, id: &str) -> Result<Option<(PolicyRow, i64)>, DbError> {
    Ok(with_conn!(conn, |c| policies::table
        .find(id)
        .select((PolicyRow::as_select(), licenses_count()))
        .first(c)
        .await
        .optional())?)
}

/// Policy `id`, locked until the transaction ends (MySQL `FOR UPDATE`; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers).
pub(crate) async fn lock_policy(conn: &mut DbConn, id: &str) -> Result<Option<PolicyRow>, DbError> {
    Ok(shared_db::lock_first!(
        conn,
        policies::table.find(id).select(PolicyRow::as_select())
    )?)
}

/// Stores a new policy.
pub(crate) async fn insert_policy(conn: &mut DbConn, row: &PolicyRow) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(policies::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// Stores every column of a changed policy.
pub(crate) async fn update_policy(conn: &mut DbConn, row: &PolicyRow) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(policies::table.find(&row.id))
        .set(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// Deletes policy `id`.
pub(crate) async fn delete_policy(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::delete(policies::table.find(id)).execute(c).await)?;
    Ok(())
}

/// How many licences name policy `id`.
pub(crate) async fn count_policy_licenses(conn: &mut DbConn, id: &str) -> Result<i64, DbError> {
    Ok(with_conn!(conn, |c| licenses::table
        .filter(licenses::policy_id.eq(id))
        .count()
        .get_result::<i64>(c)
        .await)?)
}

/// Policies (of `product`, when given) in `order` after `after`: at most `limit` rows.
pub(crate) async fn list_policies(
    conn: &mut DbConn,
    product: Option<Product>,
    order: Order,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<(PolicyRow, i64)>, DbError> {
    Ok(with_conn!(conn, |c| {
        let mut q = policies::table
            .select((PolicyRow::as_select(), licenses_count()))
            .into_boxed();
        if let Some(p) = product {
            q = q.filter(policies::product.eq(p.as_str()));
        }
        shared_db::page_in_order!(q, policies::id, order, after)
            .limit(limit)
            .load(c)
            .await
    })?)
}
