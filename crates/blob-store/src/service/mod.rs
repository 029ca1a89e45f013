//! The storage use cases, one file each: [`access`] (the namespaces' scopes), [`put`] (namespace rules: size, types, keys),
//! [`get`] (reads and metadata), [`list`] (prefix, delimiter and the paging rule),
//! [`presign`] (signed URLs, minted and checked through the key ring, see [`signed`]) and
//! [`delete`], and [`uploads`] (multipart, resumable). Writes and deletes record `blob.written` / `blob.deleted`, presigns
//! `blob.presigned`, in the audit trail.

use std::sync::Arc;

use shared_db::{DbPool, KeyRing};

use crate::model::{BlobError, BlobInfo, ObjectMeta};
use crate::namespace::Namespace;
use crate::{BlobStore, ObjectKey};

pub mod access;
pub mod delete;
pub mod get;
pub mod list;
pub mod presign;
pub mod put;
pub mod signed;
pub mod uploads;

/// Namespaces and the stores behind them, the audit trail, and the key ring that signs
/// the gateway's URLs.
pub struct BlobService {
    namespaces: Vec<(Namespace, Arc<dyn BlobStore>)>,
    pool: DbPool,
    signer: signed::UrlSigner,
    /// The most uploads a namespace holds open ([`uploads::MAX_OPEN_UPLOADS`] unless set).
    max_open_uploads: i64,
}

impl BlobService {
    /// Each namespace with its store (namespaces may name their own bucket); `pool` holds
    /// the audit trail; `keys` signs the gateway's URLs (and checks those signed under an
    /// earlier secret).
    pub fn new(namespaces: Vec<(Namespace, Arc<dyn BlobStore>)>, pool: DbPool, keys: KeyRing) -> Self {
        Self {
            namespaces,
            pool,
            signer: signed::UrlSigner::new(keys),
            max_open_uploads: uploads::MAX_OPEN_UPLOADS,
        }
    }

    /// This service with at most `max` open (unexpired) multipart uploads per namespace.
    #[must_use]
    pub fn with_max_open_uploads(mut self, max: i64) -> Self {
        self.max_open_uploads = max;
        self
    }

    /// The namespace called `name`.
    pub fn namespace(&self, name: &str) -> Result<&Namespace, BlobError> {
        self.entry(name).map(|(ns, _)| ns)
    }

    /// The namespace called `name` and the store holding it.
    fn entry(&self, name: &str) -> Result<(&Namespace, &dyn BlobStore), BlobError> {
        self.namespaces
            .iter()
            .find(|(n, _)| n.name == name)
            .map(|(n, s)| (n, s.as_ref()))
            .ok_or_else(|| BlobError::NamespaceNotFound(name.to_owned()))
    }

    /// The full storage key of `key` in `ns`.
    pub fn storage_key(&self, ns: &Namespace, key: &ObjectKey) -> Result<ObjectKey, BlobError> {
        ObjectKey::parse(&format!("{}{}", ns.storage_prefix(), key.as_str()))
            .map_err(|e| BlobError::KeyUnsupported(e.to_string()))
    }

    /// `key` as callers see it in `ns` (the storage prefix removed).
    pub fn public_key<'a>(&self, ns: &Namespace, storage_key: &'a str) -> &'a str {
        let prefix = ns.storage_prefix();
        storage_key.strip_prefix(prefix.as_str()).unwrap_or(storage_key)
    }

    /// A stored object as callers see it.
    fn info(&self, ns: &Namespace, meta: ObjectMeta) -> BlobInfo {
        BlobInfo {
            namespace: ns.name.clone(),
            key: self.public_key(ns, &meta.key).to_owned(),
            size: meta.size,
            etag: meta.etag,
            content_type: meta.content_type,
            sha256: meta.sha256,
            last_modified: meta.last_modified,
        }
    }

    /// Appends `blob.written` / `blob.deleted` to the audit trail. The object store is not
    /// in the database's transaction, so this follows the change; a failure is logged,
    /// never turned into a failed request for a write that happened.
    async fn record_change(
        &self,
        event_type: &str,
        actor: &str,
        ns: &Namespace,
        key: &ObjectKey,
        data: serde_json::Value,
    ) {
        let subject = subject(ns, key);
        if let Err(e) = crate::store::record_event(&self.pool, event_type, actor, &subject, data).await {
            tracing::warn!(error = %e, event_type, subject, "could not record a storage event");
        }
    }
}

/// The audit trail's subject of `key` in `ns`: `blob:<namespace>/<key>`.
fn subject(ns: &Namespace, key: &ObjectKey) -> String {
    format!("blob:{}/{key}", ns.name)
}
