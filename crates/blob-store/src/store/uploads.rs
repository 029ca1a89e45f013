//! The rows of multipart uploads in progress (`eb_blob_uploads`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::schema::blob_uploads;
use shared_db::{DbConn, DbError, with_conn};

/// An upload in progress, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = blob_uploads, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub struct UploadRow {
    /// The public id.
    pub id: String,
    /// The namespace's name.
    pub namespace: String,
    /// The key in the namespace.
    pub object_key: String,
    /// Declared size.
    pub size: i64,
    /// Bytes per part.
    pub part_size: i64,
    /// The type to store.
    pub content_type: String,
    /// Declared hex SHA-256.
    pub sha256: Option<String>,
    /// The backend's id of the upload.
    pub backend_id: String,
    /// Who started it.
    pub actor: String,
    /// Started.
    pub created_at: NaiveDateTime,
    /// Aborted by the sweep from then on.
    pub expires_at: NaiveDateTime,
    /// [`OPEN`], or [`COMPLETING`] / [`ABORTING`] while one request does so.
    pub state: String,
}

/// An upload taking parts.
pub const OPEN: &str = "open";
/// An upload one request is completing.
pub const COMPLETING: &str = "completing";
/// An upload one request is aborting.
pub const ABORTING: &str = "aborting";

/// How many uploads of `namespace` have not expired at `now` (open or being completed).
pub async fn count_unexpired(conn: &mut DbConn, namespace: &str, now: NaiveDateTime) -> Result<i64, DbError> {
    Ok(with_conn!(conn, |c| blob_uploads::table
        .filter(blob_uploads::namespace.eq(namespace))
        .filter(blob_uploads::expires_at.gt(now))
        .count()
        .get_result(c)
        .await)?)
}

/// Moves the open upload `id` to `state` (claiming it for one request); false when it is
/// not open (another request claimed it) or gone.
pub async fn claim(conn: &mut DbConn, id: &str, state: &str) -> Result<bool, DbError> {
    let n = with_conn!(conn, |c| diesel::update(
        blob_uploads::table
            .filter(blob_uploads::id.eq(id))
            .filter(blob_uploads::state.eq(OPEN))
    )
    .set(blob_uploads::state.eq(state))
    .execute(c)
    .await)?;
    Ok(n > 0)
}

/// Returns the upload `id` to [`OPEN`] (its claim failed).
pub async fn reopen(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(blob_uploads::table.find(id))
        .set(blob_uploads::state.eq(OPEN))
        .execute(c)
        .await)?;
    Ok(())
}

/// Stores a new upload.
pub async fn insert(conn: &mut DbConn, row: &UploadRow) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(blob_uploads::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// The upload `id`.
pub async fn get(conn: &mut DbConn, id: &str) -> Result<Option<UploadRow>, DbError> {
    Ok(with_conn!(conn, |c| blob_uploads::table
        .find(id)
        .select(UploadRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Removes the upload `id`; false when it was already gone (another request or replica
/// removed it first).
pub async fn delete(conn: &mut DbConn, id: &str) -> Result<bool, DbError> {
    let n = with_conn!(conn, |c| diesel::delete(blob_uploads::table.find(id)).execute(c).await)?;
    Ok(n > 0)
}

/// Up to `limit` uploads that expired at or before `now`, in order of (expiry, id), after
/// `after` (the last one seen, so a page never repeats rows a caller skipped).
pub async fn expired(
    conn: &mut DbConn,
    now: NaiveDateTime,
    after: Option<&(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<UploadRow>, DbError> {
    let (at, id) = after
        .cloned()
        .unwrap_or((chrono::DateTime::UNIX_EPOCH.naive_utc(), String::new()));
    Ok(with_conn!(conn, |c| blob_uploads::table
        .filter(blob_uploads::expires_at.le(now))
        .filter(
            blob_uploads::expires_at
                .gt(at)
                .or(blob_uploads::expires_at.eq(at).and(blob_uploads::id.gt(&id))),
        )
        .order((blob_uploads::expires_at.asc(), blob_uploads::id.asc()))
        .limit(limit)
        .select(UploadRow::as_select())
        .load(c)
        .await)?)
}
