//! `multipart/form-data` pieces: a short field read whole (bounded), a file part spooled
//! to a temporary file (bounded, removed when dropped), and a file part streamed on with
//! one check that the form ends after it.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use actix_multipart::{Field, Multipart};
use actix_web::web::Bytes;
use futures_util::StreamExt;
use futures_util::stream::LocalBoxStream;
use tokio::io::AsyncWriteExt;

use crate::ApiError;
use crate::body::SendBody;

/// A form that breaks its rules (400 `invalid_form`).
pub fn invalid_form(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_form", detail)
}

/// The bytes of a short field, refused (`invalid_form`) over `limit` bytes.
pub async fn read_field(field: &mut Field, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut raw = Vec::new();
    while let Some(chunk) = field.next().await {
        raw.extend_from_slice(&chunk.map_err(|e| invalid_form(e.to_string()))?);
        if raw.len() > limit {
            return Err(invalid_form(format!(
                "the {} field is too long",
                field.name().unwrap_or_default()
            )));
        }
    }
    Ok(raw)
}

/// Why a file part could not be spooled.
#[derive(Debug)]
pub enum SpoolError {
    /// The part is over the size limit.
    TooLarge,
    /// Reading the part failed (the client went away).
    Interrupted(String),
    /// The temporary file failed.
    Io(String),
}

/// A file part read into a temporary file, removed when this is dropped (on every path:
/// used, refused, or the request dropped when its client went away).
#[derive(Debug)]
pub struct Spooled {
    file: tempfile::NamedTempFile,
    /// The part's own `Content-Type`.
    pub content_type: Option<String>,
    /// The part's file name (`Content-Disposition`).
    pub file_name: Option<String>,
}

impl Spooled {
    /// Reads `field` into a new temporary file in `dir`; more than `max_size` bytes is
    /// [`SpoolError::TooLarge`].
    pub async fn fill(dir: &Path, max_size: u64, mut field: Field) -> Result<Self, SpoolError> {
        let file = tempfile::Builder::new()
            .prefix("form-")
            .tempfile_in(dir)
            .map_err(|e| SpoolError::Io(format!("creating a temporary file in {}: {e}", dir.display())))?;
        let spooled = Self {
            file,
            content_type: field.content_type().map(ToString::to_string),
            file_name: field
                .content_disposition()
                .and_then(|d| d.get_filename())
                .map(str::to_owned),
        };
        let io = |e: std::io::Error| SpoolError::Io(e.to_string());
        let mut out = tokio::fs::File::from_std(spooled.file.reopen().map_err(io)?);
        let mut size = 0u64;
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| SpoolError::Interrupted(e.to_string()))?;
            size += chunk.len() as u64;
            if size > max_size {
                return Err(SpoolError::TooLarge);
            }
            out.write_all(&chunk).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        Ok(spooled)
    }

    /// The spooled bytes, streamed from the file.
    pub fn body(&self) -> std::io::Result<SendBody> {
        let file = tokio::fs::File::from_std(self.file.reopen()?);
        Ok(tokio_util::io::ReaderStream::new(file).boxed())
    }
}

/// What came after a file part streamed by [`file_then_end`]: set when a field followed
/// it (to the field's name, if it had one).
#[derive(Debug, Clone, Default)]
pub struct FollowingField(Rc<RefCell<Option<Option<String>>>>);

impl FollowingField {
    /// `Some(name)` when a field followed the file (and so the body ended in an error).
    pub fn take(&self) -> Option<Option<String>> {
        self.0.borrow_mut().take()
    }
}

/// The bytes of `field`, then one check that `form` ends there: a field after it ends
/// the stream with an error (so a writer keeps nothing) and is named in the
/// [`FollowingField`].
pub fn file_then_end(
    field: Field,
    form: Multipart,
) -> (LocalBoxStream<'static, Result<Bytes, String>>, FollowingField) {
    let following = FollowingField::default();
    let seen = following.clone();
    // The state: the file part still being read, and the form after it; `None` once done.
    let stream = futures_util::stream::unfold(Some((field, form)), move |state| {
        let seen = seen.clone();
        async move {
            let (mut field, mut form) = state?;
            match field.next().await {
                Some(Ok(bytes)) => Some((Ok(bytes), Some((field, form)))),
                Some(Err(e)) => Some((Err(e.to_string()), None)),
                None => {
                    drop(field);
                    match form.next().await {
                        None => None,
                        Some(Err(e)) => Some((Err(e.to_string()), None)),
                        Some(Ok(next)) => {
                            *seen.0.borrow_mut() = Some(next.name().map(str::to_owned));
                            Some((Err("a field follows the file".to_owned()), None))
                        }
                    }
                }
            }
        }
    })
    .boxed_local();
    (stream, following)
}
