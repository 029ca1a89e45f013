//! `POST /api/v1/blobs/{namespace}`: browser form uploads. The fields `key` (optional)
//! and `file` may come in either order. When `key` comes first, the file streams straight
//! into the store; when the file comes first, it is spooled to a temporary file (bounded
//! by the namespace's size limit) until the form ends and says its key. Either way
//! nothing is stored until the whole form has been read and found to hold one `file` and
//! at most one `key`.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use actix_multipart::{Field, Multipart};
use actix_web::{HttpResponse, post, web};
use blob_store::{BlobError, BlobInfo, ObjectKey, Upload};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Blob, key_problem, location, parse_key, pump_into_store};
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Longest `key` field read (bytes): a key is at most `MAX_KEY_BYTES` once normalised.
const KEY_FIELD_LIMIT: usize = blob_store::MAX_KEY_BYTES * 4;

fn bad_form(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_form", detail)
}

/// The refusal of a field that may not come where it came: a second `file` or `key`, or
/// a field of another name.
fn misplaced(name: Option<&str>) -> ApiError {
    match name {
        Some(n @ ("file" | "key")) => bad_form(format!(
            "the form has a second `{n}` field; send one `file` and at most one `key` (rule: one_{n}_field)"
        )),
        other => bad_form(format!(
            "unexpected field `{}`; send `key` and `file` (rule: only_key_and_file)",
            other.unwrap_or("")
        )),
    }
}

/// Stores an object from a `multipart/form-data` form (browser uploads).
///
/// Fields: `file` (required, once) and `key` (optional, once, before or after `file`);
/// without `key` the file's name is the key. A missing, generic or form-default part
/// type is replaced by the type of the key's extension (`text/plain` for `.txt`), and
/// the namespace's allowed types are checked against that final type.
#[utoipa::path(
    tag = "blobs",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body(content = String, content_type = "multipart/form-data", description = "Fields `key` (optional, any order) and `file`"),
    security(("api_key" = ["blobs:write"])),
    responses(
        (status = 201, description = "Stored", body = Blob),
        (status = 400, description = "Bad form (a second `file` or `key` field, another field, no `file`), bad key or interrupted upload", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the namespace's write scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such namespace", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over the namespace's size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a form, or a content type not allowed", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/{namespace}")]
pub async fn upload_form(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    // The scope for the name first, so a key without it cannot tell whether the
    // namespace exists.
    principal.require(&blob_store::namespace::write_scope(&path))?;
    let ns = state.blobs.namespace(&path)?;
    let mut key: Option<ObjectKey> = None;
    let mut spooled: Option<Spooled> = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| bad_form(e.to_string()))?;
        match field.name() {
            Some("key") if key.is_none() => key = Some(read_key(&mut field).await?),
            Some("file") if spooled.is_none() => {
                let declared = field.content_type().map(ToString::to_string);
                if let Some(key) = key.take() {
                    let upload = state
                        .blobs
                        .form_upload(&path, key, &principal.actor(), declared.as_deref())?;
                    let stored = stream(&upload, field, form).await?;
                    return Ok(created(&upload, stored));
                }
                // A type the part names itself is final whatever the key: refuse it
                // before spooling anything.
                state.blobs.check_part_type(ns, declared.as_deref())?;
                spooled = Some(Spooled::fill(spool_dir(&state), ns.max_size, field, declared).await?);
            }
            other => return Err(misplaced(other)),
        }
    }
    let spooled = spooled.ok_or_else(|| bad_form("the form has no `file` field"))?;
    let key = match key {
        Some(k) => k,
        None => parse_key(
            spooled
                .file_name
                .as_deref()
                .ok_or_else(|| bad_form("give a key field or a file name"))?,
        )?,
    };
    let upload = state
        .blobs
        .form_upload(&path, key, &principal.actor(), spooled.declared.as_deref())?;
    let stored = store_spooled(&upload, spooled).await?;
    Ok(created(&upload, stored))
}

/// The `key` field's value, parsed by the key rules.
async fn read_key(field: &mut Field) -> Result<ObjectKey, ApiError> {
    let mut raw = Vec::new();
    while let Some(chunk) = field.next().await {
        raw.extend_from_slice(&chunk.map_err(|e| bad_form(e.to_string()))?);
        if raw.len() > KEY_FIELD_LIMIT {
            return Err(bad_form("the key field is too long"));
        }
    }
    ObjectKey::parse_bytes(&raw).map_err(key_problem)
}

/// Where file parts wait for their key: the local store's own temporary folder (whose
/// leftovers start-up tidies), or the system's with the S3 backend.
fn spool_dir(state: &AppState) -> PathBuf {
    match state.config.storage.s3 {
        Some(_) => std::env::temp_dir(),
        None => blob_store::LocalStore::temp_folder(&state.config.storage.blob_dir),
    }
}

/// A file part read into a temporary file, removed when this is dropped (on every
/// path: stored, refused, or the request dropped when its client went away).
struct Spooled {
    file: tempfile::NamedTempFile,
    declared: Option<String>,
    file_name: Option<String>,
}

impl Spooled {
    /// Reads `field` into a new temporary file in `dir`; over `max_size` bytes is a 413.
    async fn fill(dir: PathBuf, max_size: u64, mut field: Field, declared: Option<String>) -> Result<Self, ApiError> {
        let file_name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_owned);
        let file = tempfile::Builder::new()
            .prefix("form-")
            .tempfile_in(&dir)
            .map_err(|e| ApiError::internal(format!("creating a temporary file in {}: {e}", dir.display())))?;
        let spooled = Self {
            file,
            declared,
            file_name,
        };
        let mut out = tokio::fs::File::from_std(spooled.file.reopen().map_err(ApiError::internal)?);
        let mut size = 0u64;
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| BlobError::Interrupted(e.to_string()))?;
            size += chunk.len() as u64;
            if size > max_size {
                return Err(BlobError::TooLarge { limit: max_size }.into());
            }
            out.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        out.flush().await.map_err(ApiError::internal)?;
        Ok(spooled)
    }
}

/// Streams `field` into the upload, then reads the rest of `form`: anything but its end
/// (a second `file` or `key`, another field) fails the upload before the store commits it.
async fn stream(upload: &Upload<'_>, field: Field, form: Multipart) -> Result<BlobInfo, ApiError> {
    let refusal: Rc<RefCell<Option<ApiError>>> = Rc::default();
    let source = then_form_end(field, form, refusal.clone());
    let stored = pump_into_store(source, |body| upload.put(body)).await;
    if let Some(e) = refusal.borrow_mut().take() {
        return Err(e);
    }
    Ok(stored?)
}

/// Streams a spooled file into the upload.
async fn store_spooled(upload: &Upload<'_>, spooled: Spooled) -> Result<BlobInfo, ApiError> {
    let file = tokio::fs::File::from_std(spooled.file.reopen().map_err(ApiError::internal)?);
    let body = tokio_util::io::ReaderStream::new(file).boxed();
    let stored = upload.put(body).await;
    drop(spooled);
    Ok(stored?)
}

/// The bytes of `field`, then one check that `form` ends there; a field after it ends the
/// stream with an error (so the store keeps nothing) and leaves its refusal in `refusal`.
fn then_form_end(
    field: Field,
    form: Multipart,
    refusal: Rc<RefCell<Option<ApiError>>>,
) -> futures_util::stream::LocalBoxStream<'static, Result<bytes::Bytes, String>> {
    // The state: the file part still being read, and the form after it; `None` once done.
    futures_util::stream::unfold(Some((field, form)), move |state| {
        let refusal = refusal.clone();
        async move {
            let (mut field, form) = state?;
            match field.next().await {
                Some(Ok(bytes)) => Some((Ok(bytes), Some((field, form)))),
                Some(Err(e)) => Some((Err(e.to_string()), None)),
                None => {
                    drop(field);
                    next_after_file(form, &refusal).await.map(|item| (item, None))
                }
            }
        }
    })
    .boxed_local()
}

/// What follows the file: `None` (the body is complete) when the form ends there,
/// otherwise the error that fails the upload.
async fn next_after_file(
    mut form: Multipart,
    refusal: &RefCell<Option<ApiError>>,
) -> Option<Result<bytes::Bytes, String>> {
    match form.next().await {
        None => None,
        Some(Err(e)) => Some(Err(e.to_string())),
        Some(Ok(field)) => {
            *refusal.borrow_mut() = Some(misplaced(field.name()));
            Some(Err("a field follows the file".to_owned()))
        }
    }
}

/// The 201 answer for a stored object (its audit event is recorded).
fn created(upload: &Upload<'_>, stored: BlobInfo) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((actix_web::http::header::ETAG, stored.etag.clone()))
        .insert_header((
            actix_web::http::header::LOCATION,
            location(&upload.namespace().name, upload.key()),
        ))
        .json(Blob::from(stored))
}
