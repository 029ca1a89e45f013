//! Deleting an object, and its `blob.deleted` event.

use crate::ObjectKey;
use crate::model::{BlobError, IfMatch};
use crate::service::BlobService;

impl BlobService {
    /// Deletes `key` of the namespace `ns_name` for `actor` when `if_match` (if any)
    /// accepts its current version, and records `blob.deleted`;
    /// [`BlobError::NotFound`] when there was none.
    pub async fn delete(
        &self,
        actor: &str,
        ns_name: &str,
        key: &ObjectKey,
        if_match: Option<&IfMatch>,
    ) -> Result<(), BlobError> {
        let (ns, store) = self.entry(ns_name)?;
        let storage_key = self.storage_key(ns, key)?;
        if store.delete_if(&storage_key, if_match).await? {
            self.record_change("blob.deleted", actor, ns, key, serde_json::json!({}))
                .await;
            Ok(())
        } else {
            Err(BlobError::NotFound)
        }
    }
}
