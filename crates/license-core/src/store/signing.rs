//! Stored signing keys (private halves sealed).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::{DbConn, DbError, with_conn};

use super::schema::signing_keys;

/// A stored signing key.
#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = signing_keys)]
pub(crate) struct SigningKeyRow {
    pub(crate) kid: String,
    pub(crate) algorithm: String,
    pub(crate) public_key: String,
    pub(crate) private_key_sealed: String,
    pub(crate) created_at: NaiveDateTime,
}

/// The newest stored signing key.
pub(crate) async fn newest_signing_key(conn: &mut DbConn) -> Result<Option<SigningKeyRow>, DbError> {
    Ok(with_conn!(conn, |c| signing_keys::table
        .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
        .first(c)
        .await
        .optional())?)
}

/// Every stored key's id and public key, newest first.
pub(crate) async fn signing_public_keys(conn: &mut DbConn) -> Result<Vec<(String, String)>, DbError> {
    Ok(with_conn!(conn, |c| signing_keys::table
        .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
        .select((signing_keys::kid, signing_keys::public_key))
        .load(c)
        .await)?)
}

/// Replaces key `kid`'s sealed private half.
pub(crate) async fn reseal_signing_key(conn: &mut DbConn, kid: &str, sealed: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(signing_keys::table.find(kid))
        .set(signing_keys::private_key_sealed.eq(sealed))
        .execute(c)
        .await)?;
    Ok(())
}

/// Stores a new key.
pub(crate) async fn insert_signing_key(conn: &mut DbConn, row: &SigningKeyRow) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// Deletes key `kid`; how many rows went (0 or 1).
pub(crate) async fn delete_signing_key(conn: &mut DbConn, kid: &str) -> Result<usize, DbError> {
    Ok(with_conn!(conn, |c| diesel::delete(signing_keys::table.find(kid))
        .execute(c)
        .await)?)
}
