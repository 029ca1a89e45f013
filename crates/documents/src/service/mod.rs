//! The document service: one file per use case (`write` for put and merge patch, `read`
//! for get and list, `delete`, `schema`), all on [`DocumentService`]; `validate` runs
//! JSON Schemas.

mod delete;
mod read;
mod schema;
mod validate;
mod write;

pub use validate::MAX_SCHEMA_PATTERNS;

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
}
