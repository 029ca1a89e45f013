//! Event Bridge shared documents for client and web: collections of JSON documents with
//! a version each (optimistic concurrency), JSON Merge Patch (RFC 7396), an optional JSON
//! Schema per collection, and an audit event in the same transaction as every write.
//!
//! - [`DocumentService`]: write (replace or merge patch), get, list, delete, schemas.
//! - [`model`]: collection, id and schema rules, preconditions and entity tags, changes,
//!   filters and pages, [`DocumentError`].
//! - [`store`]: the rows (the only module that touches diesel).

pub mod model;
mod service;
pub mod store;

pub use model::{
    Change, Conditions, DocFilter, DocPage, DocumentError, check_collection, check_id, check_schema, etag, not_modified,
};
pub use service::{DocumentService, MAX_SCHEMA_PATTERNS};
pub use store::Document;
