//! Storage of API keys: the only module that touches diesel. Only an HMAC digest of each
//! key is stored; making and checking digests is the service's.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use shared_db::paging::Order;
use shared_db::schema::api_keys;
use shared_db::{DbConn, DbError, with_conn};

/// A stored API key (its digest, never the key).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub struct ApiKeyRow {
    /// UUIDv7.
    pub id: String,
    /// Human label.
    pub name: String,
    /// The key's first characters, so people can tell keys apart.
    pub prefix: String,
    /// Hex HMAC-SHA256 of the key.
    pub digest: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Not valid after this time.
    pub expires_at: Option<NaiveDateTime>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<NaiveDateTime>,
    /// Revoked at.
    pub revoked_at: Option<NaiveDateTime>,
}

/// Stores a new key.
pub async fn insert(conn: &mut DbConn, row: &ApiKeyRow) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(api_keys::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// The key whose digest is `digest`.
pub async fn find_by_digest(conn: &mut DbConn, digest: &str) -> Result<Option<ApiKeyRow>, DbError> {
    let row = with_conn!(conn, |c| api_keys::table
        .filter(api_keys::digest.eq(digest))
        .select(ApiKeyRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// One key by id.
pub async fn get(conn: &mut DbConn, id: &str) -> Result<Option<ApiKeyRow>, DbError> {
    let row = with_conn!(conn, |c| api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// Up to `limit` keys in `order` of their ids (which sort by time), after the id `after`.
pub async fn list(
    conn: &mut DbConn,
    order: Order,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<ApiKeyRow>, DbError> {
    let rows = with_conn!(conn, |c| {
        let q = api_keys::table.select(ApiKeyRow::as_select()).into_boxed();
        shared_db::page_in_order!(q, api_keys::id, order, after)
            .limit(limit)
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Revokes a key; false when it was already revoked or does not exist.
pub async fn revoke(conn: &mut DbConn, id: &str, at: NaiveDateTime) -> Result<bool, DbError> {
    let n = with_conn!(conn, |c| diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::revoked_at.is_null())
    )
    .set(api_keys::revoked_at.eq(Some(at)))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// Replaces a key's digest (after a `SECRET_KEY` rotation).
pub async fn set_digest(conn: &mut DbConn, id: &str, digest: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(api_keys::table.find(id))
        .set(api_keys::digest.eq(digest))
        .execute(c)
        .await)?;
    Ok(())
}

/// Records a use of the key.
pub async fn touch(conn: &mut DbConn, id: &str, at: NaiveDateTime) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(api_keys::table.find(id))
        .set(api_keys::last_used_at.eq(Some(at)))
        .execute(c)
        .await)?;
    Ok(())
}
