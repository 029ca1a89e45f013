//! A collection's JSON Schema: read, set (compiled first) and removed.

use serde_json::Value;
use shared_db::{DbConn, DbError};

use super::DocumentService;
use super::validate::compile;
use crate::model::DocumentError;
use crate::store;

impl DocumentService {
    /// The collection's schema, if it has one.
    pub async fn schema(&self, conn: &mut DbConn, collection: &str) -> Result<Option<Value>, DocumentError> {
        let text = store::schema_text(conn, collection).await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Sets (or with `None` removes) the collection's JSON Schema; existing documents are
    /// not re-checked.
    pub async fn set_schema(
        &self,
        conn: &mut DbConn,
        collection: &str,
        json_schema: Option<&Value>,
    ) -> Result<(), DocumentError> {
        if let Some(s) = json_schema {
            let s = s.clone();
            tokio::task::spawn_blocking(move || compile(&s).map(drop))
                .await
                .map_err(|e| DbError::Corrupt(format!("schema compilation stopped: {e}")))??;
        }
        let text = json_schema.map(Value::to_string);
        shared_db::transaction!(conn, DocumentError, |c| {
            store::delete_schema(c, collection).await?;
            if let Some(t) = &text {
                store::insert_schema(c, collection, t, shared_db::now()).await?;
            }
            Ok(())
        })
    }
}
