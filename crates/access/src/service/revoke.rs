//! Revoking a key, with its `api_key.revoked` event.

use shared_db::{DbConn, DbError, events};

use super::AccessService;
use crate::model::{AccessError, Principal};
use crate::store::{self, ApiKeyRow};

impl AccessService {
    /// Revokes key `id`; [`AccessError::NotFound`] when there is no such key. Revoking
    /// twice is not an error. `revoker` is the key that asks (none for the local CLI): it
    /// may revoke only keys whose every scope it could have granted, else
    /// [`AccessError::InsufficientScope`].
    pub async fn revoke(
        &self,
        conn: &mut DbConn,
        id: &str,
        revoker: Option<&Principal>,
    ) -> Result<ApiKeyRow, AccessError> {
        let actor = revoker.map_or_else(|| "cli".to_owned(), Principal::actor);
        if let Some(revoker) = revoker
            && let Some(target) = store::get(conn, id).await?
        {
            let scopes: Vec<String> = target.scopes.split_whitespace().map(str::to_owned).collect();
            revoker.require_covers(&scopes)?;
        }
        let row = shared_db::transaction!(conn, DbError, |c| {
            let Some(row) = store::get(c, id).await? else {
                return Ok(None);
            };
            if store::revoke(c, id, shared_db::now()).await? {
                events::append(
                    c,
                    events::NewEvent {
                        event_type: "api_key.revoked",
                        actor: Some(&actor),
                        subject: Some(&format!("api_key:{id}")),
                        data: serde_json::json!({ "name": row.name }),
                    },
                )
                .await?;
            }
            store::get(c, id).await
        })?;
        row.ok_or(AccessError::NotFound)
    }
}
