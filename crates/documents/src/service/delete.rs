//! Deleting a document under `If-Match`, with its `document.deleted` event.

use shared_db::{DbConn, events};

use super::DocumentService;
use crate::model::{Conditions, DocumentError};
use crate::store;

impl DocumentService {
    /// Deletes a document under `if_match`, recording the event (the transaction runs
    /// again when it lost a lock race).
    pub async fn delete(
        &self,
        conn: &mut DbConn,
        collection: &str,
        id: &str,
        if_match: Option<i64>,
        actor: &str,
    ) -> Result<(), DocumentError> {
        shared_db::transaction!(conn, DocumentError, |c| {
            let current = store::lock(c, collection, id).await?.ok_or(DocumentError::NotFound)?;
            Conditions {
                if_match,
                if_none_match: false,
            }
            .check(Some(current.version))?;
            store::delete(c, collection, id).await?;
            let subject = format!("document:{collection}/{id}");
            events::record(
                c,
                "document.deleted",
                actor,
                &subject,
                serde_json::json!({ "version": current.version }),
            )
            .await?;
            Ok(())
        })
    }
}
