//! Reading an object: its metadata, and its body (whole or a byte range).

use crate::model::{BlobError, ByteRange, ObjectBody, ObjectMeta};
use crate::service::BlobService;
use crate::{BlobStore, ObjectKey};

/// An object of a namespace, to read.
pub struct Object<'a> {
    store: &'a dyn BlobStore,
    storage_key: ObjectKey,
}

impl BlobService {
    /// The object `key` of the namespace `ns_name` (whether or not it exists).
    pub fn object(&self, ns_name: &str, key: &ObjectKey) -> Result<Object<'_>, BlobError> {
        let (ns, store) = self.entry(ns_name)?;
        let storage_key = self.storage_key(ns, key)?;
        Ok(Object { store, storage_key })
    }
}

impl Object<'_> {
    /// Its metadata.
    pub async fn head(&self) -> Result<ObjectMeta, BlobError> {
        self.store.head(&self.storage_key).await
    }

    /// Its body (or `range` of it) with the metadata of the version read.
    pub async fn get(&self, range: Option<ByteRange>) -> Result<ObjectBody, BlobError> {
        self.store.get(&self.storage_key, range).await
    }

    /// Its body, `range` of it only while it is still the version `validated` (an
    /// `If-Range` ETag found current before): a version written since is not the one the
    /// caller holds part of, so it gets that version whole. Each backend reads a body and
    /// its metadata from one version.
    pub async fn get_range_of(
        &self,
        range: Option<ByteRange>,
        validated: Option<&str>,
    ) -> Result<ObjectBody, BlobError> {
        let object = self.get(range).await?;
        match validated {
            Some(etag) if object.range.is_some() && object.meta.etag != etag => self.get(None).await,
            _ => Ok(object),
        }
    }
}
