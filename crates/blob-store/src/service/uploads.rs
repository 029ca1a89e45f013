//! Multipart uploads, resumable: a client declares the object (key, size, type and
//! optionally its SHA-256), gets one URL per part, `PUT`s each part (straight to S3 through
//! a presigned `UploadPart` URL, or to the gateway through a URL it signed for the local
//! store), may ask which parts arrived (to resume after a drop), then completes the
//! upload with the parts' ETags, which makes the object and records `blob.written`, or
//! aborts it. Uploads left a day are aborted by the sweep ([`crate::jobs`]).
//!
//! Parts follow S3's rules on both backends: 5 MiB to 5 GiB each (the last may be
//! smaller), at most 10,000 of them. The rules of a `PUT` hold too: the namespace's size
//! limit (checked at creation and again at completion), its content types and the key
//! rules.

use chrono::{DateTime, Utc};
use shared_db::time::to_utc;

use crate::model::{
    Assembly, BlobError, BlobInfo, ByteStream, CompleteUpload, CreateUpload, PartUrl, ReceivedPart, SignedRequest,
    UploadInfo,
};
use crate::namespace::Namespace;
use crate::service::BlobService;
use crate::service::put::content_type_for;
use crate::store::uploads::{self as rows, UploadRow};
use crate::{BlobStore, ObjectKey};

/// One MiB.
const MIB: u64 = 1024 * 1024;
/// The smallest part (except the last), as S3.
pub const MIN_UPLOAD_PART: u64 = 5 * MIB;
/// The largest part, as S3.
pub const MAX_UPLOAD_PART: u64 = 5 * 1024 * MIB;
/// The most parts an upload has, as S3.
pub const MAX_UPLOAD_PARTS: u64 = 10_000;
/// The part size when the client does not ask for one (grown to fit 10,000 parts).
pub const DEFAULT_UPLOAD_PART: u64 = 8 * MIB;
/// How long an upload may take: its part URLs work until then, and the sweep aborts it
/// after.
pub const UPLOAD_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The most uploads a namespace holds open (not completed, aborted or expired) by default;
/// one more is refused with `too_many_uploads` (409). Concurrent creations may pass it by
/// a few: each counts before it stores its row.
pub const MAX_OPEN_UPLOADS: i64 = 1_000;
/// The shape of an upload id (`up_` and 32 hex digits: 128 random bits), as a route pattern.
pub const UPLOAD_ID_PATTERN: &str = "up_[0-9a-f]{32}";

/// True when `id` has the shape of an upload id.
pub fn is_upload_id(id: &str) -> bool {
    id.strip_prefix("up_")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// A fresh, unguessable upload id.
fn new_upload_id() -> Result<String, BlobError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| BlobError::Internal("no randomness for an upload id".to_owned()))?;
    Ok(format!("up_{}", data_encoding::HEXLOWER.encode(&bytes)))
}

/// The part size of an upload of `size` bytes: `asked` when it fits S3's rules, else the
/// default grown (in whole MiB) to fit 10,000 parts.
pub fn plan_part_size(size: u64, asked: Option<u64>) -> Result<u64, BlobError> {
    let fewest = size.div_ceil(MAX_UPLOAD_PARTS);
    match asked {
        Some(p) if !(MIN_UPLOAD_PART..=MAX_UPLOAD_PART).contains(&p) => Err(BlobError::InvalidField {
            field: "part_size",
            message: "part_size must be 5 MiB (5242880) to 5 GiB (5368709120)",
        }),
        Some(p) if p < fewest => Err(BlobError::InvalidField {
            field: "part_size",
            message: "part_size is too small for the size: an upload has at most 10,000 parts",
        }),
        Some(p) => Ok(p),
        None => {
            let p = DEFAULT_UPLOAD_PART.max(fewest.div_ceil(MIB) * MIB);
            if p > MAX_UPLOAD_PART {
                return Err(BlobError::InvalidField {
                    field: "size",
                    message: "size exceeds what 10,000 parts of 5 GiB hold",
                });
            }
            Ok(p)
        }
    }
}

/// The parts of an upload: (number, offset, length).
fn parts_of(size: u64, part_size: u64) -> impl Iterator<Item = (u32, u64, u64)> {
    let count = size.div_ceil(part_size);
    (0..count).map(move |i| {
        let offset = i * part_size;
        (
            u32::try_from(i + 1).unwrap_or(u32::MAX),
            offset,
            part_size.min(size - offset),
        )
    })
}

/// The declared content type, checked as a presign's is: a media type of printable ASCII.
fn well_formed_type(content_type: &str) -> Result<(), BlobError> {
    let ok = content_type.len() <= 255
        && content_type.contains('/')
        && content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
    if ok {
        return Ok(());
    }
    Err(BlobError::InvalidField {
        field: "content_type",
        message: "content_type must be a media type such as image/png (printable ASCII, at most 255 bytes)",
    })
}

/// A declared hex SHA-256, lower-cased.
fn parse_sha256(hex: &str) -> Result<([u8; 32], String), BlobError> {
    let lower = hex.trim().to_ascii_lowercase();
    let bytes = data_encoding::HEXLOWER
        .decode(lower.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or(BlobError::InvalidField {
            field: "sha256",
            message: "sha256 must be 64 hex digits",
        })?;
    Ok((bytes, lower))
}

/// A part `PUT` through the gateway, its signature checked and its upload found, waiting
/// for its body.
pub struct PartUpload<'a> {
    store: &'a dyn BlobStore,
    storage_key: ObjectKey,
    backend_id: String,
    number: u32,
    length: u64,
}

impl PartUpload<'_> {
    /// Stores the part (exactly the signed length) and answers its ETag.
    pub async fn put(&self, body: ByteStream) -> Result<ReceivedPart, BlobError> {
        self.store
            .multipart_put_part(&self.storage_key, &self.backend_id, self.number, self.length, body)
            .await
    }
}

impl BlobService {
    /// Starts a multipart upload in the namespace `ns_name` for `actor`, checked as a `PUT`
    /// of the whole object would be (the namespace, the key, the size limit, the type),
    /// and answers it with a URL for every part; `public_url` is where the gateway is
    /// reached (for the URLs it signs).
    pub async fn create_upload(
        &self,
        actor: &str,
        ns_name: &str,
        request: CreateUpload,
        public_url: &str,
    ) -> Result<UploadInfo, BlobError> {
        let (ns, store) = self.entry(ns_name)?;
        let key = ObjectKey::parse(&request.key)?;
        crate::service::put::writable_key(&key)?;
        if request.size == 0 {
            return Err(BlobError::InvalidField {
                field: "size",
                message: "size must be at least 1 byte (store an empty object with PUT)",
            });
        }
        if request.size > ns.max_size {
            return Err(BlobError::TooLarge { limit: ns.max_size }.on_field("size"));
        }
        if let Some(t) = &request.content_type {
            well_formed_type(t)?;
        }
        let content_type =
            content_type_for(ns, request.content_type.as_deref(), &key).map_err(|e| e.on_field("content_type"))?;
        let sha256 = request
            .sha256
            .as_deref()
            .map(parse_sha256)
            .transpose()?
            .map(|(_, hex)| hex);
        let part_size = plan_part_size(request.size, request.part_size)?;
        let storage_key = self.storage_key(ns, &key)?;
        let open = {
            let mut conn = self.pool.get().await?;
            rows::count_unexpired(&mut conn, &ns.name, Utc::now().naive_utc()).await?
        };
        too_many_uploads(open, self.max_open_uploads)?;
        let backend_id = store
            .multipart_create(&storage_key, &content_type, sha256.as_deref())
            .await?;
        let created_at = shared_db::now();
        let lifetime = chrono::Duration::from_std(UPLOAD_LIFETIME).unwrap_or(chrono::Duration::days(1));
        let row = UploadRow {
            id: new_upload_id()?,
            namespace: ns.name.clone(),
            object_key: key.as_str().to_owned(),
            size: i64::try_from(request.size).map_err(|_| BlobError::TooLarge { limit: ns.max_size })?,
            part_size: i64::try_from(part_size).unwrap_or(i64::MAX),
            content_type,
            sha256,
            backend_id,
            actor: actor.to_owned(),
            created_at,
            expires_at: created_at + lifetime,
            state: rows::OPEN.to_owned(),
        };
        let inserted = async {
            let mut conn = self.pool.get().await?;
            rows::insert(&mut conn, &row).await
        }
        .await;
        if let Err(e) = inserted {
            if let Err(abort) = store.multipart_abort(&storage_key, &row.backend_id).await {
                tracing::warn!(error = %abort, "could not abort an upload whose row was not stored");
            }
            return Err(e.into());
        }
        self.upload_info(ns, store, &row, Vec::new(), public_url).await
    }

    /// The upload `id` of the namespace `ns_name` with the parts received so far and fresh
    /// URLs for every part (to resume).
    pub async fn show_upload(&self, ns_name: &str, id: &str, public_url: &str) -> Result<UploadInfo, BlobError> {
        let (ns, store, row) = self.upload_row(ns_name, id).await?;
        let received = store
            .multipart_parts(&self.row_storage_key(ns, &row)?, &row.backend_id)
            .await?;
        self.upload_info(ns, store, &row, received, public_url).await
    }

    /// A `PUT` of part `number` of the upload `id` in `ns_name` through a URL the gateway
    /// signed (`signed`), sending `sent_length` bytes: the signature is checked first (so a
    /// caller without a good one learns nothing of the upload), then the upload looked up.
    pub async fn part_upload(
        &self,
        ns_name: &str,
        id: &str,
        number: u32,
        signed: SignedRequest,
        sent_length: Option<u64>,
    ) -> Result<PartUpload<'_>, BlobError> {
        self.signer
            .verify_part(ns_name, id, number, &signed, Utc::now().timestamp())
            .map_err(|why| BlobError::SignatureInvalid(why.to_owned()))?;
        let length = signed.content_length.unwrap_or_default();
        if sent_length != Some(length) {
            return Err(BlobError::SignatureInvalid(format!(
                "the URL was signed for Content-Length {length}"
            )));
        }
        let (ns, store, row) = self.upload_row(ns_name, id).await?;
        if row.state != rows::OPEN {
            return Err(busy());
        }
        Ok(PartUpload {
            store,
            storage_key: self.row_storage_key(ns, &row)?,
            backend_id: row.backend_id,
            number,
            length,
        })
    }

    /// Completes the upload `id` of the namespace `ns_name` from `request`'s parts (each
    /// received with the ETag given, in ascending order, adding up to the declared size,
    /// within the namespace's limit), makes the object and records `blob.written` for
    /// `actor`. A refusal stores nothing and keeps the upload.
    ///
    /// One request completes an upload: it claims it first (`open` to `completing`, a
    /// conditional update), so a concurrent completion, abort or part gets
    /// `upload_completing` (or [`BlobError::UploadNotFound`] once it is gone); a refused
    /// or failed completion returns it to `open`.
    pub async fn complete_upload(
        &self,
        actor: &str,
        ns_name: &str,
        id: &str,
        request: CompleteUpload,
    ) -> Result<BlobInfo, BlobError> {
        let (ns, store, row) = self.upload_row(ns_name, id).await?;
        self.claim(&row, rows::COMPLETING).await?;
        let meta = match self.assemble(ns, store, &row, request).await {
            Ok(meta) => meta,
            Err(e) => {
                self.reopen(&row).await;
                return Err(e);
            }
        };
        let mut conn = self.pool.get().await?;
        rows::delete(&mut conn, &row.id).await?;
        drop(conn);
        let key = ObjectKey::parse(&row.object_key)?;
        let data = serde_json::json!({
            "size": meta.size, "etag": meta.etag, "content_type": meta.content_type, "sha256": meta.sha256,
        });
        self.record_change("blob.written", actor, ns, &key, data).await;
        Ok(self.info(ns, meta))
    }

    /// Claims the upload of `row` for one request (`state`: completing or aborting).
    async fn claim(&self, row: &UploadRow, state: &str) -> Result<(), BlobError> {
        let mut conn = self.pool.get().await?;
        if rows::claim(&mut conn, &row.id, state).await? {
            return Ok(());
        }
        match rows::get(&mut conn, &row.id).await? {
            Some(_) => Err(busy()),
            None => Err(BlobError::UploadNotFound),
        }
    }

    /// Returns a claimed upload to `open` (logged when that fails: the sweep still ends it).
    async fn reopen(&self, row: &UploadRow) {
        let reopened = async {
            let mut conn = self.pool.get().await?;
            rows::reopen(&mut conn, &row.id).await
        }
        .await;
        if let Err(e) = reopened {
            tracing::warn!(upload = %row.id, error = %e, "could not reopen an upload after a failed completion or abort");
        }
    }

    /// Checks `request`'s parts against the upload and what the store holds, and makes
    /// the object.
    async fn assemble(
        &self,
        ns: &Namespace,
        store: &dyn BlobStore,
        row: &UploadRow,
        request: CompleteUpload,
    ) -> Result<crate::model::ObjectMeta, BlobError> {
        let storage_key = self.row_storage_key(ns, row)?;
        let size = u64::try_from(row.size).unwrap_or_default();
        let part_size = u64::try_from(row.part_size).unwrap_or(1);
        if size > ns.max_size {
            return Err(BlobError::TooLarge { limit: ns.max_size }.on_field("size"));
        }
        let count = size.div_ceil(part_size);
        if request.parts.is_empty() {
            return Err(refused("invalid_parts", "parts lists at least one part".to_owned()));
        }
        let mut previous = 0;
        for p in &request.parts {
            if p.number <= previous {
                return Err(refused(
                    "invalid_parts",
                    "parts must be in ascending order of number, each once".to_owned(),
                ));
            }
            if u64::from(p.number) > count {
                return Err(refused(
                    "invalid_parts",
                    format!("part {} is beyond this upload's {count} parts", p.number),
                ));
            }
            previous = p.number;
        }
        let received = store.multipart_parts(&storage_key, &row.backend_id).await?;
        let mut parts = Vec::with_capacity(request.parts.len());
        for p in &request.parts {
            let held = received
                .iter()
                .find(|r| r.number == p.number)
                .ok_or_else(|| refused("invalid_parts", format!("part {} has not been received", p.number)))?;
            if crate::local::multipart::bare_etag(&held.etag) != crate::local::multipart::bare_etag(&p.etag) {
                return Err(refused(
                    "invalid_parts",
                    format!("part {}'s ETag is {}, not {}", p.number, held.etag, p.etag),
                ));
            }
            parts.push(held.clone());
        }
        let total: u64 = parts.iter().map(|p| p.size).sum();
        if total != size {
            return Err(refused(
                "size_mismatch",
                format!("the parts hold {total} bytes; the upload declared {size}; nothing was stored"),
            ));
        }
        let assembly = Assembly {
            parts,
            content_type: row.content_type.clone(),
            size,
            sha256: row.sha256.as_deref().map(parse_sha256).transpose()?.map(|(b, _)| b),
        };
        store.multipart_complete(&storage_key, &row.backend_id, assembly).await
    }

    /// Aborts the upload `id` of the namespace `ns_name`: its parts are dropped.
    pub async fn abort_upload(&self, ns_name: &str, id: &str) -> Result<(), BlobError> {
        let (ns, store, row) = self.upload_row(ns_name, id).await?;
        self.claim(&row, rows::ABORTING).await?;
        let ended = self.end_upload(ns, store, &row).await;
        if ended.is_err() {
            self.reopen(&row).await;
        }
        ended
    }

    /// Aborts every upload that expired at or before `now` (a day after it started);
    /// answers how many. An upload whose abort fails is logged and skipped (the next sweep
    /// tries it again) so it cannot stop the others; rows are paged by (expiry, id) after
    /// the last one seen, so skipped rows are not fetched again in this sweep. Uploads of a
    /// namespace no longer configured lose their row, and their parts on every store that
    /// can drop them by id alone (the local store's `.uploads/<id>` folder).
    pub async fn sweep_uploads(&self, now: DateTime<Utc>) -> Result<usize, BlobError> {
        const BATCH: i64 = 100;
        let mut swept = 0;
        let mut after = None;
        loop {
            let expired = {
                let mut conn = self.pool.get().await?;
                rows::expired(&mut conn, now.naive_utc(), after.as_ref(), BATCH).await?
            };
            let fetched = expired.len();
            for row in expired {
                after = Some((row.expires_at, row.id.clone()));
                let ended = match self.entry(&row.namespace) {
                    Ok((ns, store)) => self.end_upload(ns, store, &row).await,
                    Err(_) => self.forget_upload(&row).await,
                };
                match ended {
                    Ok(()) => swept += 1,
                    Err(e) => {
                        tracing::warn!(upload = %row.id, namespace = %row.namespace, error = %e, "could not abort an expired upload; skipped until the next sweep");
                    }
                }
            }
            if i64::try_from(fetched).unwrap_or(0) < BATCH {
                return Ok(swept);
            }
        }
    }

    /// Forgets an upload of a namespace no longer configured: its parts on every store
    /// that can drop them by id alone, then its row.
    async fn forget_upload(&self, row: &UploadRow) -> Result<(), BlobError> {
        tracing::warn!(upload = %row.id, namespace = %row.namespace, "forgetting an upload of a namespace no longer configured");
        let mut seen: Vec<usize> = Vec::new();
        for (_, store) in &self.namespaces {
            let id = std::sync::Arc::as_ptr(store).cast::<()>().addr();
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            store.multipart_forget(&row.backend_id).await?;
        }
        let mut conn = self.pool.get().await?;
        rows::delete(&mut conn, &row.id).await?;
        Ok(())
    }

    /// Aborts the backend's upload, then forgets the row.
    async fn end_upload(&self, ns: &Namespace, store: &dyn BlobStore, row: &UploadRow) -> Result<(), BlobError> {
        store
            .multipart_abort(&self.row_storage_key(ns, row)?, &row.backend_id)
            .await?;
        let mut conn = self.pool.get().await?;
        rows::delete(&mut conn, &row.id).await?;
        Ok(())
    }

    /// The upload `id` of the namespace `ns_name` that has not expired, with its namespace
    /// and store; [`BlobError::UploadNotFound`] otherwise (another namespace's included).
    async fn upload_row(&self, ns_name: &str, id: &str) -> Result<(&Namespace, &dyn BlobStore, UploadRow), BlobError> {
        let (ns, store) = self.entry(ns_name)?;
        if !is_upload_id(id) {
            return Err(BlobError::UploadNotFound);
        }
        let row = {
            let mut conn = self.pool.get().await?;
            rows::get(&mut conn, id).await?
        };
        match row {
            Some(row) if row.namespace == ns.name && to_utc(row.expires_at) > Utc::now() => Ok((ns, store, row)),
            _ => Err(BlobError::UploadNotFound),
        }
    }

    /// The storage key of an upload's object.
    fn row_storage_key(&self, ns: &Namespace, row: &UploadRow) -> Result<ObjectKey, BlobError> {
        self.storage_key(ns, &ObjectKey::parse(&row.object_key)?)
    }

    /// The upload as callers see it, with a URL for every part valid until it expires.
    async fn upload_info(
        &self,
        ns: &Namespace,
        store: &dyn BlobStore,
        row: &UploadRow,
        received: Vec<ReceivedPart>,
        public_url: &str,
    ) -> Result<UploadInfo, BlobError> {
        let size = u64::try_from(row.size).unwrap_or_default();
        let part_size = u64::try_from(row.part_size).unwrap_or(1);
        let expires_at = to_utc(row.expires_at);
        let expires_in = (expires_at - Utc::now()).to_std().unwrap_or_default();
        let storage_key = self.row_storage_key(ns, row)?;
        let mut parts = Vec::new();
        for (number, offset, length) in parts_of(size, part_size) {
            // Up to 10,000 signatures: give the worker back now and then.
            if number % 64 == 0 {
                tokio::task::yield_now().await;
            }
            let (url, headers) = match store
                .multipart_part_url(&storage_key, &row.backend_id, number, length, expires_in)
                .await?
            {
                Some(p) => (p.url, p.headers.into_iter().collect()),
                None => (
                    self.part_url(public_url, &ns.name, &row.id, number, length, expires_at.timestamp())?,
                    std::collections::BTreeMap::new(),
                ),
            };
            parts.push(PartUrl {
                number,
                offset,
                size: length,
                url,
                method: "PUT".to_owned(),
                headers,
            });
        }
        Ok(UploadInfo {
            id: row.id.clone(),
            namespace: ns.name.clone(),
            key: row.object_key.clone(),
            size,
            part_size,
            content_type: row.content_type.clone(),
            sha256: row.sha256.clone(),
            created_at: to_utc(row.created_at),
            expires_at,
            parts,
            received,
        })
    }

    /// The gateway's signed URL for part `number` of the upload `id` in `ns`.
    fn part_url(
        &self,
        public_url: &str,
        ns: &str,
        id: &str,
        number: u32,
        length: u64,
        expires: i64,
    ) -> Result<String, BlobError> {
        let signature = self.signer.sign_part(ns, id, number, length, expires);
        let mut url = url::Url::parse(&format!(
            "{}/api/v1/blobs/{ns}/uploads/{id}/parts/{number}",
            public_url.trim_end_matches('/'),
        ))
        .map_err(|e| BlobError::Internal(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("X-EB-Method", "PUT")
            .append_pair("X-EB-Expires", &expires.to_string())
            .append_pair("X-EB-Content-Length", &length.to_string())
            .append_pair("X-EB-Signature", &signature);
        Ok(url.into())
    }
}

/// Refuses a new upload when `open` uploads of the namespace already reach `max`.
fn too_many_uploads(open: i64, max: i64) -> Result<(), BlobError> {
    if open < max {
        return Ok(());
    }
    Err(BlobError::UploadConflict {
        code: "too_many_uploads",
        message: format!(
            "the namespace holds {open} open uploads, its limit is {max}: complete or abort some (they also expire a day after they start)"
        ),
    })
}

/// The refusal of a request on an upload another request is completing or aborting.
fn busy() -> BlobError {
    BlobError::UploadConflict {
        code: "upload_completing",
        message: "another request is completing or aborting this upload; try again".to_owned(),
    }
}

/// A completion refused with `code`.
fn refused(code: &'static str, message: String) -> BlobError {
    BlobError::UploadRefused { code, message }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn part_sizes_follow_s3s_rules() {
        assert_eq!(plan_part_size(1, None).unwrap(), DEFAULT_UPLOAD_PART);
        // 50 GiB in 8 MiB parts is 6,400 parts: the default fits.
        assert_eq!(plan_part_size(50 * 1024 * MIB, None).unwrap(), DEFAULT_UPLOAD_PART);
        // 100 GiB needs parts of at least 10.24 MiB: grown to 11 MiB.
        let p = plan_part_size(100 * 1024 * MIB, None).unwrap();
        assert_eq!(p, 11 * MIB);
        assert!((100 * 1024 * MIB).div_ceil(p) <= MAX_UPLOAD_PARTS);
        assert_eq!(plan_part_size(20 * MIB, Some(16 * MIB)).unwrap(), 16 * MIB);
        for bad in [MIN_UPLOAD_PART - 1, MAX_UPLOAD_PART + 1] {
            assert!(matches!(
                plan_part_size(20 * MIB, Some(bad)),
                Err(BlobError::InvalidField { field: "part_size", .. })
            ));
        }
        assert!(plan_part_size(100 * 1024 * MIB, Some(5 * MIB)).is_err(), "20,480 parts");
        assert!(plan_part_size(MAX_UPLOAD_PARTS * MAX_UPLOAD_PART + 1, None).is_err());
    }

    #[test]
    fn parts_cover_the_object() {
        let parts: Vec<_> = parts_of(10 * MIB + 3, 5 * MIB).collect();
        assert_eq!(parts, [(1, 0, 5 * MIB), (2, 5 * MIB, 5 * MIB), (3, 10 * MIB, 3)]);
        assert_eq!(parts_of(5 * MIB, 5 * MIB).count(), 1);
    }

    #[test]
    fn the_open_uploads_cap_refuses_at_the_limit() {
        assert!(too_many_uploads(0, MAX_OPEN_UPLOADS).is_ok());
        assert!(too_many_uploads(MAX_OPEN_UPLOADS - 1, MAX_OPEN_UPLOADS).is_ok());
        for open in [MAX_OPEN_UPLOADS, MAX_OPEN_UPLOADS + 5] {
            assert!(matches!(
                too_many_uploads(open, MAX_OPEN_UPLOADS),
                Err(BlobError::UploadConflict {
                    code: "too_many_uploads",
                    ..
                })
            ));
        }
    }

    #[test]
    fn ids_are_random_and_shaped() {
        let (a, b) = (new_upload_id().unwrap(), new_upload_id().unwrap());
        assert!(is_upload_id(&a) && is_upload_id(&b) && a != b);
        for bad in ["up_", "up_XYZ", "uploads", "up_0123456789abcdef0123456789abcdeF"] {
            assert!(!is_upload_id(bad), "{bad}");
        }
        assert!(parse_sha256(&"AB".repeat(32)).is_ok());
        assert!(parse_sha256("abc").is_err());
    }
}
