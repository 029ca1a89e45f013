//! The model: collection names and document ids (and their rules), the preconditions of
//! a write, how a document changes, list filters and pages, and [`DocumentError`].

use serde_json::Value;
use shared_db::DbError;
use shared_db::paging::PagingError;

use crate::store::Document;

/// Why a document operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The collection name breaks [`check_collection`]'s rule.
    #[error("a collection name is 1 to 64 of a-z, 0-9, _ and -")]
    InvalidCollection,
    /// The id breaks [`check_id`]'s rule.
    #[error("an id is 1 to 255 characters, not starting with _, without / or control characters")]
    InvalidId,
    /// No such document.
    #[error("no document has that id")]
    NotFound,
    /// `If-Match` named another version, or `If-None-Match: *` and it exists.
    #[error("the document is at version {current:?}")]
    PreconditionFailed {
        /// The current version (none when it does not exist).
        current: Option<i64>,
    },
    /// A precondition the API does not take (`If-Match` with anything but one version,
    /// `If-None-Match` on a write with anything but `*`).
    #[error("{0}")]
    InvalidPrecondition(&'static str),
    /// The body sent is over the size limit (before it is read).
    #[error("documents are at most {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body sent is not JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// The document would exceed the size limit.
    #[error("the document would be {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body breaks the collection's JSON Schema.
    #[error("the document breaks the collection's schema")]
    SchemaViolation(Vec<String>),
    /// The schema itself is not a valid JSON Schema.
    #[error("not a valid JSON Schema: {0}")]
    InvalidSchema(String),
    /// Other writers kept changing the document (or the schema) while this write
    /// validated it; nothing was stored.
    #[error("the document kept changing while it was validated; retry")]
    Contended,
    /// A refused page request.
    #[error(transparent)]
    Paging(#[from] PagingError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl shared_db::LockConflict for DocumentError {
    fn is_lock_conflict(&self) -> bool {
        matches!(self, DocumentError::Db(e) if e.is_lock_conflict())
    }
}

/// A collection name: 1 to 64 of a-z, 0-9, `_` and `-`.
pub fn check_collection(name: &str) -> Result<(), DocumentError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DocumentError::InvalidCollection)
    }
}

/// A document id: 1 to 255 characters, not starting with `_` (`_schema` is the
/// collection's), without `/` or control characters.
pub fn check_id(id: &str) -> Result<(), DocumentError> {
    let ok =
        !id.is_empty() && id.len() <= 255 && !id.starts_with('_') && !id.chars().any(|c| c.is_control() || c == '/');
    if ok { Ok(()) } else { Err(DocumentError::InvalidId) }
}

/// The preconditions of a write.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions {
    /// `If-Match`: write only if at this version.
    pub if_match: Option<i64>,
    /// `If-None-Match: *`: write only if it does not exist.
    pub if_none_match: bool,
}

impl Conditions {
    /// The preconditions a write sends: `If-Match` (one version, as its entity tag,
    /// weak or strong) and `If-None-Match` (only `*`: create only).
    pub fn parse(if_match: Option<&str>, if_none_match: Option<&str>) -> Result<Self, DocumentError> {
        let if_match = match if_match {
            None => None,
            Some(v) => Some(
                v.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .parse::<i64>()
                    .map_err(|_| {
                        DocumentError::InvalidPrecondition("If-Match takes one ETag of this API, such as \"3\"")
                    })?,
            ),
        };
        let if_none_match = match if_none_match {
            None => false,
            Some("*") => true,
            Some(_) => {
                return Err(DocumentError::InvalidPrecondition(
                    "only If-None-Match: * is supported on writes",
                ));
            }
        };
        Ok(Conditions {
            if_match,
            if_none_match,
        })
    }

    /// `Ok` when a document at `current` (none: missing) meets the conditions.
    pub fn check(&self, current: Option<i64>) -> Result<(), DocumentError> {
        let ok = match (self.if_match, current) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        } && !(self.if_none_match && current.is_some());
        if ok {
            Ok(())
        } else {
            Err(DocumentError::PreconditionFailed { current })
        }
    }
}

/// A version as its entity tag (`"3"`).
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// True when a read's `If-None-Match` names `version`'s entity tag: the reader's copy is
/// current.
pub fn not_modified(if_none_match: Option<&str>, version: i64) -> bool {
    let tag = etag(version);
    if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
}

/// A JSON Schema a collection may take: a JSON object (`true` and `false` are schemas
/// too, but `false` would refuse every write).
pub fn check_schema(schema: &Value) -> Result<(), DocumentError> {
    if schema.is_object() {
        Ok(())
    } else {
        Err(DocumentError::InvalidSchema(
            "the schema must be a JSON object".to_owned(),
        ))
    }
}

/// How a document was changed.
pub enum Change {
    /// Replace it with this body (create when missing).
    Replace(Value),
    /// Apply this JSON Merge Patch (the document must exist).
    MergePatch(Value),
}

/// The body `change` makes of `current`.
pub(crate) fn apply(change: &Change, current: Option<&Document>) -> Result<Value, DocumentError> {
    match change {
        Change::Replace(v) => Ok(v.clone()),
        Change::MergePatch(patch) => {
            let Some(doc) = current else {
                return Err(DocumentError::NotFound);
            };
            let mut value: Value = serde_json::from_str(&doc.body).map_err(|e| DbError::Corrupt(e.to_string()))?;
            json_patch::merge(&mut value, patch);
            Ok(value)
        }
    }
}

/// The body as stored, refused when over `max_bytes`.
pub(crate) fn sized(body: &Value, max_bytes: usize) -> Result<String, DocumentError> {
    let text = body.to_string();
    if text.len() > max_bytes {
        return Err(DocumentError::TooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    Ok(text)
}

/// Which page of a collection to list.
#[derive(Debug, Clone, Default)]
pub struct DocFilter {
    /// Only ids starting with this.
    pub prefix: String,
    /// Only documents whose top-level fields equal these (compared as JSON values, or as
    /// strings).
    pub equals: Vec<(String, String)>,
    /// A previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
}

impl DocFilter {
    /// From a query's pairs: `prefix`, `cursor`, `limit` (not a number is refused as
    /// out of range), and any other as an equality filter on a top-level field.
    pub fn from_query(pairs: Vec<(String, String)>) -> Self {
        let mut filter = DocFilter::default();
        for (k, v) in pairs {
            match k.as_str() {
                "prefix" => filter.prefix = v,
                "cursor" => filter.cursor = Some(v),
                "limit" => filter.limit = Some(v.parse().unwrap_or(0)),
                _ => filter.equals.push((k, v)),
            }
        }
        filter
    }
}

/// One page of documents, in id order.
#[derive(Debug, Clone)]
pub struct DocPage {
    /// The documents.
    pub items: Vec<Document>,
    /// The cursor of the next page; none on the last.
    pub next_cursor: Option<String>,
}

/// True when the document's top-level fields equal `equals`.
pub(crate) fn matches(doc: &Document, equals: &[(String, String)]) -> bool {
    let value: Value = serde_json::from_str(&doc.body).unwrap_or(Value::Null);
    equals.iter().all(|(field, want)| match value.get(field) {
        Some(Value::String(s)) => s == want,
        Some(other) => serde_json::from_str::<Value>(want).is_ok_and(|w| &w == other),
        None => false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn preconditions_take_one_version_and_only_a_star() {
        let c = Conditions::parse(Some(" W/\"3\""), Some("*")).unwrap();
        assert_eq!((c.if_match, c.if_none_match), (Some(3), true));
        let none = Conditions::parse(None, None).unwrap();
        assert_eq!((none.if_match, none.if_none_match), (None, false));
        assert!(matches!(
            Conditions::parse(Some("\"a\""), None),
            Err(DocumentError::InvalidPrecondition(_))
        ));
        assert!(matches!(
            Conditions::parse(None, Some("\"3\"")),
            Err(DocumentError::InvalidPrecondition(_))
        ));
    }

    #[test]
    fn a_read_is_not_modified_when_it_names_the_current_tag() {
        assert_eq!(etag(7), "\"7\"");
        assert!(not_modified(Some("\"6\", \"7\""), 7));
        assert!(!not_modified(Some("\"6\""), 7));
        assert!(!not_modified(None, 7));
    }

    #[test]
    fn a_query_becomes_a_filter() {
        let pairs = [("prefix", "a"), ("limit", "x"), ("cursor", "c"), ("status", "open")];
        let f = DocFilter::from_query(pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec());
        assert_eq!(
            (f.prefix.as_str(), f.limit, f.cursor.as_deref()),
            ("a", Some(0), Some("c"))
        );
        assert_eq!(f.equals, vec![("status".to_owned(), "open".to_owned())]);
    }
}
