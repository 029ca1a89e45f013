//! `POST /api/v1/blobs/{namespace}`: browser form uploads. The fields `key` (optional)
//! and `file` may come in either order. When `key` comes first, the file streams straight
//! into the store; when the file comes first, it is spooled to a temporary file (bounded
//! by the namespace's size limit) until the form ends and says its key. Either way
//! nothing is stored until the whole form has been read and found to hold one `file` and
//! at most one `key`.

use std::path::PathBuf;

use actix_multipart::Multipart;
use actix_web::{HttpResponse, post, web};
use blob_store::{Access, BlobError, BlobInfo, ObjectKey};
use futures_util::StreamExt;
use web_kit::body;
use web_kit::multipart::{SpoolError, Spooled, file_then_end, invalid_form, read_field};

use web_kit::responses::Unauthorized;

use super::{NoNamespace, created, key_problem};
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Longest `key` field read (bytes): a key is at most `MAX_KEY_BYTES` once normalised.
const KEY_FIELD_LIMIT: usize = blob_store::MAX_KEY_BYTES * 4;

/// The refusal of a field that may not come where it came: a second `file` or `key`, or
/// a field of another name.
fn misplaced(name: Option<&str>) -> ApiError {
    invalid_form(match name {
        Some(n @ ("file" | "key")) => {
            format!("the form has a second `{n}` field; send one `file` and at most one `key` (rule: one_{n}_field)")
        }
        other => format!(
            "unexpected field `{}`; send `key` and `file` (rule: only_key_and_file)",
            other.unwrap_or("")
        ),
    })
    .into()
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
        (status = 201, description = "Stored", body = BlobInfo),
        (status = 400, description = "Bad form (a second `file` or `key` field, another field, no `file`), bad key or interrupted upload", body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "The key lacks the namespace's write scope", body = Problem, content_type = "application/problem+json"),
        NoNamespace,
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
    let ns = state.blobs.authorise(&path, Access::Write, |scope| {
        principal.require(scope).map_err(ApiError::from)
    })?;
    let mut key: Option<ObjectKey> = None;
    let mut spooled: Option<Spooled> = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| invalid_form(e.to_string()))?;
        match field.name() {
            Some("key") if key.is_none() => {
                let raw = read_field(&mut field, KEY_FIELD_LIMIT).await?;
                key = Some(ObjectKey::parse_bytes(&raw).map_err(key_problem)?);
            }
            Some("file") if spooled.is_none() => {
                let declared = field.content_type().map(ToString::to_string);
                if let Some(key) = key.take() {
                    let upload = state
                        .blobs
                        .form_upload(&path, key, &principal.actor(), declared.as_deref())?;
                    // Anything after the file fails the upload before the store commits it.
                    let (source, following) = file_then_end(field, form);
                    let stored = body::pump(source, |body| upload.put(body)).await;
                    if let Some(name) = following.take() {
                        return Err(misplaced(name.as_deref()));
                    }
                    return Ok(created(&upload, stored?));
                }
                // A type the part names itself is final whatever the key: refuse it
                // before spooling anything.
                state.blobs.check_part_type(ns, declared.as_deref())?;
                let filled = Spooled::fill(&spool_dir(&state), ns.max_size, field).await;
                spooled = Some(filled.map_err(|e| spool_error(e, ns.max_size))?);
            }
            other => return Err(misplaced(other)),
        }
    }
    let spooled = spooled.ok_or_else(|| invalid_form("the form has no `file` field"))?;
    let key = match key {
        Some(k) => k,
        None => ObjectKey::parse(
            spooled
                .file_name
                .as_deref()
                .ok_or_else(|| invalid_form("give a key field or a file name"))?,
        )
        .map_err(key_problem)?,
    };
    let upload = state
        .blobs
        .form_upload(&path, key, &principal.actor(), spooled.content_type.as_deref())?;
    let stored = upload.put(spooled.body().map_err(ApiError::internal)?).await;
    drop(spooled);
    Ok(created(&upload, stored?))
}

/// Where file parts wait for their key: the local store's own temporary folder (whose
/// leftovers start-up tidies), or the system's with the S3 backend.
fn spool_dir(state: &AppState) -> PathBuf {
    match state.config.storage.s3 {
        Some(_) => std::env::temp_dir(),
        None => blob_store::LocalStore::temp_folder(&state.config.storage.blob_dir),
    }
}

/// A file part that could not be spooled, as storage refuses it.
fn spool_error(e: SpoolError, limit: u64) -> ApiError {
    match e {
        SpoolError::TooLarge => BlobError::TooLarge { limit }.into(),
        SpoolError::Interrupted(m) => BlobError::Interrupted(m).into(),
        SpoolError::Io(m) => ApiError::internal(m),
    }
}
