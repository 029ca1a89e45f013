//! Listing keys a page at a time, and showing one.

use shared_db::DbConn;
use shared_db::paging::{self, continue_from, encode_ordered};

use super::AccessService;
use crate::model::{AccessError, KeyFilter, KeyPage};
use crate::store::{self, ApiKeyRow};

impl AccessService {
    /// One page of keys, newest first unless `filter.order` says otherwise.
    pub async fn list(&self, conn: &mut DbConn, filter: &KeyFilter) -> Result<KeyPage, AccessError> {
        list(conn, filter).await
    }

    /// Key `id`; [`AccessError::NotFound`] when there is none.
    pub async fn show(&self, conn: &mut DbConn, id: &str) -> Result<ApiKeyRow, AccessError> {
        store::get(conn, id).await?.ok_or(AccessError::NotFound)
    }
}

/// One page of keys (needs no secret: see [`AccessService::list`]).
pub async fn list(conn: &mut DbConn, filter: &KeyFilter) -> Result<KeyPage, AccessError> {
    let limit = paging::limit(filter.limit)?;
    let (order, after) = continue_from(filter.cursor.as_deref(), filter.order)?;
    let rows = store::list(conn, order, &after, limit + 1).await?;
    let (items, next_cursor) = paging::page(rows, limit, |k: &ApiKeyRow| encode_ordered(order, &k.id));
    Ok(KeyPage { items, next_cursor })
}

/// Key `id`, if there is one (needs no secret).
pub async fn find(conn: &mut DbConn, id: &str) -> Result<Option<ApiKeyRow>, AccessError> {
    Ok(store::get(conn, id).await?)
}

/// Why key `id` no longer opens what it opened (a long-lived stream asks every few
/// seconds): gone, revoked or expired; `None` while it is good, and when the database
/// cannot be asked (the caller asks again).
pub async fn ended(pool: &shared_db::DbPool, id: &str) -> Option<&'static str> {
    let mut conn = pool.get().await.ok()?;
    match store::get(&mut conn, id).await {
        Ok(None) => Some("the API key no longer exists"),
        Ok(Some(row)) if row.revoked_at.is_some() => Some("the API key was revoked"),
        Ok(Some(row)) if crate::is_expired(&row, shared_db::now()) => Some("the API key expired"),
        Ok(Some(_)) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not check an API key; asking again later");
            None
        }
    }
}
