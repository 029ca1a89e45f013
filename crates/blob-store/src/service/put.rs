//! Writing an object: the namespace's rules (size, content types, keys), checked before
//! the body is read, then the write and its `blob.written` event.

use crate::model::{BlobError, BlobInfo, ByteStream, Conditions, Grant, PutOptions};
use crate::namespace::Namespace;
use crate::service::BlobService;
use crate::{BlobStore, ObjectKey, media};

/// An upload checked against its namespace, waiting for its body.
pub struct Upload<'a> {
    service: &'a BlobService,
    ns: &'a Namespace,
    store: &'a dyn BlobStore,
    key: ObjectKey,
    storage_key: ObjectKey,
    actor: String,
    options: PutOptions,
}

/// Refuses a key that may not be written: `uploads/up_<32 hex digits>` and the keys below
/// it, whose URLs the upload routes answer (such an object could not be read back).
pub fn writable_key(key: &ObjectKey) -> Result<(), BlobError> {
    let mut segments = key.as_str().split('/');
    let reserved = segments.next() == Some("uploads") && segments.next().is_some_and(super::uploads::is_upload_id);
    if reserved {
        return Err(BlobError::InvalidKey(crate::KeyError::ReservedUploadPath));
    }
    Ok(())
}

/// Refuses `content_type` when the namespace does not accept it.
pub fn type_allowed(ns: &Namespace, content_type: &str) -> Result<(), BlobError> {
    if ns.allows(content_type) {
        return Ok(());
    }
    Err(BlobError::TypeNotAllowed {
        content_type: content_type.to_owned(),
        namespace: ns.name.clone(),
    })
}

/// The type an upload of `declared` type to `key` is stored with (a generic or missing
/// one gives way to the key's extension), when the namespace accepts that final type.
pub fn content_type_for(ns: &Namespace, declared: Option<&str>, key: &ObjectKey) -> Result<String, BlobError> {
    let content_type = media::stored_type(declared, key);
    type_allowed(ns, &content_type)?;
    Ok(content_type)
}

impl BlobService {
    /// An upload of a raw body to `key` in the namespace `ns_name`, sent with `sent_type`
    /// and `sent_length`, checked in this order: the namespace exists; what a signed URL
    /// bound (`grant`) is what is sent; the namespace accepts the type it will be stored
    /// with; the length is within its limit; then the caller's `conditions` (read from the
    /// request only now, so their own refusals come after these); and the storage key.
    pub fn upload<E: From<BlobError>>(
        &self,
        ns_name: &str,
        key: ObjectKey,
        grant: Grant,
        sent_type: Option<&str>,
        sent_length: Option<u64>,
        conditions: impl FnOnce() -> Result<Conditions, E>,
    ) -> Result<Upload<'_>, E> {
        let (ns, store) = self.entry(ns_name)?;
        writable_key(&key)?;
        if let Some(required) = &grant.content_type
            && required != sent_type.unwrap_or(media::OCTET_STREAM)
        {
            return Err(BlobError::SignatureInvalid(format!("the URL was signed for Content-Type {required}")).into());
        }
        // A signed length must be sent as `Content-Length` (the caller then reads exactly
        // that many bytes); a chunked body cannot be held to it.
        if let Some(required) = grant.content_length
            && sent_length != Some(required)
        {
            return Err(
                BlobError::SignatureInvalid(format!("the URL was signed for Content-Length {required}")).into(),
            );
        }
        let content_type = content_type_for(ns, sent_type, &key)?;
        if let Some(len) = sent_length
            && len > ns.max_size
        {
            return Err(BlobError::TooLarge { limit: ns.max_size }.into());
        }
        let conditions = conditions()?;
        let storage_key = self.storage_key(ns, &key)?;
        let options = PutOptions {
            content_type,
            max_size: grant.content_length.map_or(ns.max_size, |n| n.min(ns.max_size)),
            expected_md5: conditions.expected_md5,
            expected_sha256: conditions.expected_sha256,
            if_none_match: conditions.if_none_match,
            if_match: conditions.if_match,
        };
        Ok(Upload {
            service: self,
            ns,
            store,
            key,
            storage_key,
            actor: grant.actor,
            options,
        })
    }

    /// An upload from a form (no conditions or checksums) of a part of `declared` type to
    /// `key` in `ns_name` by `actor`: the storage key first, then the type.
    pub fn form_upload(
        &self,
        ns_name: &str,
        key: ObjectKey,
        actor: &str,
        declared: Option<&str>,
    ) -> Result<Upload<'_>, BlobError> {
        let (ns, store) = self.entry(ns_name)?;
        writable_key(&key)?;
        let storage_key = self.storage_key(ns, &key)?;
        let options = PutOptions {
            content_type: content_type_for(ns, declared, &key)?,
            max_size: ns.max_size,
            expected_md5: None,
            expected_sha256: None,
            if_none_match: false,
            if_match: None,
        };
        Ok(Upload {
            service: self,
            ns,
            store,
            key,
            storage_key,
            actor: actor.to_owned(),
            options,
        })
    }

    /// Refuses a form part whose own type (not a generic one, which gives way to the key's)
    /// the namespace does not accept: that type is final whatever the key, so it is
    /// refused before the part is read.
    pub fn check_part_type(&self, ns: &Namespace, declared: Option<&str>) -> Result<(), BlobError> {
        match declared {
            Some(t) if !media::is_generic(Some(t)) => type_allowed(ns, t),
            _ => Ok(()),
        }
    }
}

impl Upload<'_> {
    /// The key in its namespace.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// The namespace written to.
    pub fn namespace(&self) -> &Namespace {
        self.ns
    }

    /// Stores `body`, all or nothing, and records `blob.written`.
    pub async fn put(&self, body: ByteStream) -> Result<BlobInfo, BlobError> {
        let meta = self.store.put(&self.storage_key, body, self.options.clone()).await?;
        let data = serde_json::json!({
            "size": meta.size, "etag": meta.etag, "content_type": meta.content_type, "sha256": meta.sha256,
        });
        self.service
            .record_change("blob.written", &self.actor, self.ns, &self.key, data)
            .await;
        Ok(self.service.info(self.ns, meta))
    }
}
