//! `Idempotency-Key` bookkeeping: the first request with a key is remembered (in the same
//! transaction as the resource it created) with a hash of its body; a repeat within 24 h
//! with the same body gets the original resource, with another body a conflict.
//!
//! Keys belong to an [`Owner`]: each API key has its own, and the gateway's own work
//! (the bridge's rule deliveries and reminders, SNS) has namespaces no API key can
//! reach, so no caller can replay, block or learn about another's request.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ring::digest;

use crate::schema::idempotency_keys;
use crate::{DbConn, DbError, with_conn};

/// How long a key is remembered.
pub const RETENTION_HOURS: i64 = 24;

/// Whose keys these are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A caller, by its API key's id (stored as `key:<id>`).
    ApiKey(String),
    /// Work of the gateway itself, such as `bridge` (stored as `system:<name>`).
    System(&'static str),
}

impl Owner {
    /// As stored.
    pub fn stored(&self) -> String {
        match self {
            Owner::ApiKey(id) => format!("key:{id}"),
            Owner::System(name) => format!("system:{name}"),
        }
    }
}

/// An idempotency key as the services take it: its owner, the key and the hash of the
/// request it guards.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// Whose key it is.
    pub owner: &'a Owner,
    /// The key.
    pub key: &'a str,
    /// [`request_hash`] of the request.
    pub hash: &'a str,
}

/// What an earlier request with the same key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No request used the key (in the last 24 h).
    New,
    /// The same request created this resource.
    Replay(String),
    /// The key was used with a different request.
    Conflict,
}

/// Checks a key's shape: 1 to 255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The hash stored for a request body (hex SHA-256).
pub fn request_hash(body: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(digest::digest(&digest::SHA256, body).as_ref())
}

/// Looks the owner's key up in `scope` (forgetting it when older than 24 h).
pub async fn check(conn: &mut DbConn, scope: &str, key: Key<'_>) -> Result<Seen, DbError> {
    let cutoff = crate::now() - chrono::Duration::hours(RETENTION_HOURS);
    let owner = key.owner.stored();
    with_conn!(&mut *conn, |c| diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::owner.eq(&owner))
            .filter(idempotency_keys::scope.eq(scope))
            .filter(idempotency_keys::idem_key.eq(key.key))
            .filter(idempotency_keys::created_at.lt(cutoff))
    )
    .execute(c)
    .await)?;
    let found: Option<(String, String)> = with_conn!(conn, |c| idempotency_keys::table
        .find((&owner, scope, key.key))
        .select((idempotency_keys::request_hash, idempotency_keys::resource_id))
        .first(c)
        .await
        .optional())?;
    Ok(match found {
        None => Seen::New,
        Some((h, id)) if h == key.hash => Seen::Replay(id),
        Some(_) => Seen::Conflict,
    })
}

/// Remembers the owner's key for `resource_id`; call it in the transaction that creates
/// the resource. A unique violation means a concurrent request with the key won.
pub async fn remember(conn: &mut DbConn, scope: &str, key: Key<'_>, resource_id: &str) -> Result<(), DbError> {
    let now = crate::now();
    let owner = key.owner.stored();
    with_conn!(conn, |c| diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::owner.eq(&owner),
            idempotency_keys::scope.eq(scope),
            idempotency_keys::idem_key.eq(key.key),
            idempotency_keys::request_hash.eq(key.hash),
            idempotency_keys::resource_id.eq(resource_id),
            idempotency_keys::created_at.eq(now),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Rows deleted per statement by [`purge_expired`].
const PURGE_BATCH: usize = 1000;

/// Deletes the keys past their retention (a key is also forgotten when it is next
/// looked up, but most never are). On MySQL it deletes in rounds of at most 1,000
/// rows, on the `created_at` index, so each statement holds its locks briefly.
/// Returns how many it deleted.
pub async fn purge_expired(conn: &mut DbConn) -> Result<usize, DbError> {
    let cutoff = crate::now() - chrono::Duration::hours(RETENTION_HOURS);
    let mut purged = 0;
    loop {
        let n = match conn {
            DbConn::Mysql(c) => {
                diesel::sql_query("DELETE FROM eb_idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT 1000")
                    .bind::<diesel::sql_types::Timestamp, _>(cutoff)
                    .execute(c)
                    .await?
            }
            DbConn::Sqlite(c) => {
                diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff)))
                    .execute(c)
                    .await?
            }
        };
        purged += n;
        if n < PURGE_BATCH || matches!(conn, DbConn::Sqlite(_)) {
            return Ok(purged);
        }
    }
}

/// The hourly purge until `shutdown`: [`purge_expired`] at start and every hour, each
/// failure logged and tried again an hour later.
pub async fn run_purge(pool: crate::DbPool, shutdown: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {
                let purge = async {
                    let mut conn = pool.get().await?;
                    purge_expired(&mut conn).await
                };
                match purge.await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(purged = n, "expired idempotency keys"),
                    Err(e) => tracing::warn!(error = %e, "purging expired idempotency keys failed; retrying in an hour"),
                }
            }
        }
    }
}
