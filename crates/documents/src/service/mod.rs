//! The document service: one file per use case (`write` for put and merge patch, `read`
//! for get and list, `delete`, `schema`), all on [`DocumentService`]; `validate` runs
//! JSON Schemas.

mod delete;
mod read;
mod schema;
mod validate;
mod write;

pub use validate::MAX_SCHEMA_PATTERNS;

use crate::model::DocumentError;

/// Shared documents; cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct DocumentService {
    /// The largest document stored, in bytes (its JSON text).
    max_bytes: usize,
}

impl DocumentService {
    /// Documents of at most `max_bytes` bytes.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }

    /// The largest document stored, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// A body sent to be stored, read as JSON: refused when over the size limit or not
    /// JSON.
    pub fn parse(&self, body: &[u8]) -> Result<serde_json::Value, DocumentError> {
        if body.len() > self.max_bytes {
            return Err(DocumentError::BodyTooLarge { limit: self.max_bytes });
        }
        serde_json::from_slice(body).map_err(|e| DocumentError::MalformedJson(e.to_string()))
    }
}
