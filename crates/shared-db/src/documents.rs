//! Shared JSON documents for client and web: collections of documents with a version
//! each (optimistic concurrency), JSON Merge Patch (RFC 7396), an optional JSON Schema
//! per collection, and an audit event in the same transaction as every write.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::schema::{collection_schemas, documents};
use crate::{DbConn, DbError, events, with_conn};

/// A stored document.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = documents, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub struct Document {
    /// Its collection.
    pub collection: String,
    /// Its id in the collection.
    pub id: String,
    /// Starts at 1, one more per write: the `ETag`.
    pub version: i64,
    /// The JSON text.
    pub body: String,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Last written.
    pub updated_at: NaiveDateTime,
}

/// Why a document operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// No such document.
    #[error("no document has that id")]
    NotFound,
    /// `If-Match` named another version, or `If-None-Match: *` and it exists.
    #[error("the document is at version {current:?}")]
    PreconditionFailed {
        /// The current version (none when it does not exist).
        current: Option<i64>,
    },
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
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for DocumentError {
    fn from(e: diesel::result::Error) -> Self {
        DocumentError::Db(e.into())
    }
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
    fn check(&self, current: Option<i64>) -> Result<(), DocumentError> {
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

/// How a document was changed.
pub enum Change {
    /// Replace it with this body (create when missing).
    Replace(Value),
    /// Apply this JSON Merge Patch (the document must exist).
    MergePatch(Value),
}

/// The document, read under a write lock within the transaction (MySQL `FOR UPDATE`;
/// SQLite's `BEGIN IMMEDIATE` already serialises writers).
async fn lock(conn: &mut DbConn, collection: &str, id: &str) -> Result<Option<Document>, DocumentError> {
    let q = |c: &str, i: &str| documents::table.find((c.to_owned(), i.to_owned()));
    Ok(match conn {
        DbConn::Mysql(c) => q(collection, id)
            .select(Document::as_select())
            .for_update()
            .first(c)
            .await
            .optional()?,
        DbConn::Sqlite(c) => q(collection, id)
            .select(Document::as_select())
            .first(c)
            .await
            .optional()?,
    })
}

/// The collection's schema, if it has one.
pub async fn schema(conn: &mut DbConn, collection: &str) -> Result<Option<Value>, DocumentError> {
    let text = schema_text(conn, collection).await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// The most patterns (`pattern`, `patternProperties` names) one schema may hold.
pub const MAX_SCHEMA_PATTERNS: usize = 256;
/// The compiled size of one pattern, in bytes (the `regex` crate's `size_limit`).
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;
/// The lazy DFA cache of one pattern, in bytes (the `regex` crate's `dfa_size_limit`).
const PATTERN_DFA_SIZE_LIMIT: usize = 256 * 1024;

/// Refuses patterns the linear-time `regex` engine cannot compile (look-around,
/// backreferences) or that compile too large, naming the pattern. jsonschema compiles
/// `pattern` and `patternProperties` with the engine it is given, but the patterns
/// `unevaluatedProperties` consults always with a backtracking engine: checking every
/// pattern here keeps that engine on its linear path.
fn check_patterns(schema: &Value, count: &mut usize) -> Result<(), DocumentError> {
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            for s in items {
                check_patterns(s, count)?;
            }
        }
        return Ok(());
    };
    for (keyword, value) in map {
        match (keyword.as_str(), value) {
            ("pattern", Value::String(p)) => check_pattern(p, count)?,
            ("patternProperties", Value::Object(props)) => {
                for (p, s) in props {
                    check_pattern(p, count)?;
                    check_patterns(s, count)?;
                }
            }
            // Maps of names to schemas.
            ("properties" | "$defs" | "definitions" | "dependentSchemas" | "dependencies", Value::Object(m)) => {
                for s in m.values() {
                    check_patterns(s, count)?;
                }
            }
            // Instances, not schemas.
            ("const" | "enum" | "default" | "examples", _) => {}
            (_, v @ (Value::Object(_) | Value::Array(_))) => check_patterns(v, count)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_pattern(pattern: &str, count: &mut usize) -> Result<(), DocumentError> {
    *count += 1;
    if *count > MAX_SCHEMA_PATTERNS {
        return Err(DocumentError::InvalidSchema(format!(
            "a schema holds at most {MAX_SCHEMA_PATTERNS} patterns"
        )));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_DFA_SIZE_LIMIT)
        .build()
        .map(drop)
        .map_err(|e| {
            let reason = match e {
                regex::Error::CompiledTooBig(_) => "it compiles too large".to_owned(),
                other => other.to_string().lines().last().unwrap_or_default().trim().to_owned(),
            };
            DocumentError::InvalidSchema(format!(
                "the pattern {} is not supported: {reason} (patterns run on a linear-time engine: \
                 no look-around or backreferences)",
                Value::String(pattern.to_owned())
            ))
        })
}

/// The longest string `format: regex` accepts, in bytes.
const FORMAT_REGEX_MAX: usize = 4096;

/// `format: regex`: a pattern of at most [`FORMAT_REGEX_MAX`] bytes that the linear-time
/// `regex` crate compiles within the same size limits as schema patterns.
fn is_regex(s: &str) -> bool {
    s.len() <= FORMAT_REGEX_MAX
        && regex::RegexBuilder::new(s)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(PATTERN_DFA_SIZE_LIMIT)
            .build()
            .is_ok()
}

/// Compiles `schema` with the linear-time regex engine and bounded pattern sizes.
fn compile(schema: &Value) -> Result<jsonschema::Validator, DocumentError> {
    check_patterns(schema, &mut 0)?;
    jsonschema::options()
        .with_pattern_options(
            jsonschema::PatternOptions::regex()
                .size_limit(PATTERN_SIZE_LIMIT)
                .dfa_size_limit(PATTERN_DFA_SIZE_LIMIT),
        )
        // Replaces jsonschema's own `format: regex` check (checked by default for
        // drafts 4, 6 and 7), which re-parses the whole string once per `\cX` escape.
        .with_format("regex", is_regex)
        .build(schema)
        .map_err(|e| DocumentError::InvalidSchema(e.to_string()))
}

fn validate(schema: &Value, body: &Value) -> Result<(), DocumentError> {
    let validator = compile(schema)?;
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| {
            format!(
                "{}: {e}",
                if e.instance_path.as_str().is_empty() {
                    "/"
                } else {
                    e.instance_path.as_str()
                }
            )
        })
        .take(50)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DocumentError::SchemaViolation(errors))
    }
}

/// [`validate`] on a blocking thread, so a heavy schema never holds an async worker.
async fn validate_off_worker(schema: Value, body: Value) -> Result<Value, DocumentError> {
    tokio::task::spawn_blocking(move || validate(&schema, &body).map(|()| body))
        .await
        .map_err(|e| DbError::Corrupt(format!("schema validation stopped: {e}")))?
}

/// How often a write re-reads and re-validates when the document or the schema
/// changed while it validated.
const WRITE_ATTEMPTS: usize = 5;

/// The body `change` makes of `current`.
fn apply(change: &Change, current: Option<&Document>) -> Result<Value, DocumentError> {
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
fn sized(body: &Value, max_bytes: usize) -> Result<String, DocumentError> {
    let text = body.to_string();
    if text.len() > max_bytes {
        return Err(DocumentError::TooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    Ok(text)
}

async fn schema_text(conn: &mut DbConn, collection: &str) -> Result<Option<String>, DocumentError> {
    Ok(with_conn!(conn, |c| collection_schemas::table
        .find(collection)
        .select(collection_schemas::json_schema)
        .first(c)
        .await
        .optional())?)
}

/// Writes a document of at most `max_bytes` under `conditions` in one transaction with
/// its audit event; returns it and whether it was created.
///
/// The collection's schema is checked before the write transaction opens, on a blocking
/// thread, so validation never holds the database's write lock nor an async worker; the
/// transaction then makes sure the schema, and for a merge patch the document, are
/// still what was validated, and starts over when they changed.
pub async fn write(
    conn: &mut DbConn,
    collection: &str,
    id: &str,
    change: Change,
    conditions: Conditions,
    max_bytes: usize,
    actor: &str,
) -> Result<(Document, bool), DocumentError> {
    for _ in 0..WRITE_ATTEMPTS {
        let current = get(conn, collection, id).await?;
        conditions.check(current.as_ref().map(|d| d.version))?;
        let body = apply(&change, current.as_ref())?;
        let text = sized(&body, max_bytes)?;
        let schema = schema_text(conn, collection).await?;
        if let Some(s) = &schema {
            let s: Value = serde_json::from_str(s).map_err(|e| DbError::Corrupt(e.to_string()))?;
            validate_off_worker(s, body).await?;
        }
        let checked = Checked {
            version: current.map(|d| d.version),
            schema,
            text,
        };
        if let Some(done) = commit(conn, collection, id, &change, conditions, max_bytes, actor, checked).await? {
            return Ok(done);
        }
    }
    Err(DocumentError::Contended)
}

/// What was validated outside the transaction.
struct Checked {
    /// The version the body was made from.
    version: Option<i64>,
    /// The schema it was validated against (as stored).
    schema: Option<String>,
    /// The body.
    text: String,
}

/// The write transaction; `None` when the schema, or the document a merge patch was
/// applied to, changed since `checked` was validated.
#[allow(clippy::too_many_arguments)]
async fn commit(
    conn: &mut DbConn,
    collection: &str,
    id: &str,
    change: &Change,
    conditions: Conditions,
    max_bytes: usize,
    actor: &str,
    checked: Checked,
) -> Result<Option<(Document, bool)>, DocumentError> {
    let (collection, id, actor) = (collection.to_owned(), id.to_owned(), actor.to_owned());
    conn.transaction::<_, DocumentError, _>(async move |c| {
        let current = lock(c, &collection, &id).await?;
        let version = current.as_ref().map(|d| d.version);
        conditions.check(version)?;
        if schema_text(c, &collection).await? != checked.schema {
            return Ok(None);
        }
        let text = match change {
            Change::MergePatch(_) if version != checked.version => {
                if checked.schema.is_some() {
                    return Ok(None);
                }
                // No schema to check: patch the current document here.
                sized(&apply(change, current.as_ref())?, max_bytes)?
            }
            _ => checked.text,
        };
        let now = crate::now();
        let doc = match current {
            Some(old) => {
                let doc = Document {
                    version: old.version + 1,
                    body: text,
                    updated_at: now,
                    ..old
                };
                with_conn!(&mut *c, |c| diesel::update(
                    documents::table.find((&doc.collection, &doc.id))
                )
                .set((
                    documents::version.eq(doc.version),
                    documents::body.eq(&doc.body),
                    documents::updated_at.eq(now),
                ))
                .execute(c)
                .await)?;
                doc
            }
            None => {
                let doc = Document {
                    collection: collection.clone(),
                    id: id.clone(),
                    version: 1,
                    body: text,
                    created_at: now,
                    updated_at: now,
                };
                with_conn!(&mut *c, |c| diesel::insert_into(documents::table)
                    .values(&doc)
                    .execute(c)
                    .await)?;
                doc
            }
        };
        let subject = format!("document:{collection}/{id}");
        events::record(
            c,
            "document.written",
            &actor,
            &subject,
            serde_json::json!({ "version": doc.version }),
        )
        .await?;
        let created = doc.version == 1;
        Ok(Some((doc, created)))
    })
    .await
}

/// Deletes a document under `if_match`, recording the event.
pub async fn delete(
    conn: &mut DbConn,
    collection: &str,
    id: &str,
    if_match: Option<i64>,
    actor: &str,
) -> Result<(), DocumentError> {
    let (collection, id, actor) = (collection.to_owned(), id.to_owned(), actor.to_owned());
    conn.transaction::<_, DocumentError, _>(async move |c| {
        let current = lock(c, &collection, &id).await?.ok_or(DocumentError::NotFound)?;
        Conditions {
            if_match,
            if_none_match: false,
        }
        .check(Some(current.version))?;
        with_conn!(&mut *c, |c| diesel::delete(documents::table.find((&collection, &id)))
            .execute(c)
            .await)?;
        let subject = format!("document:{collection}/{id}");
        events::record(
            c,
            "document.deleted",
            &actor,
            &subject,
            serde_json::json!({ "version": current.version }),
        )
        .await?;
        Ok(())
    })
    .await
}

/// One document.
pub async fn get(conn: &mut DbConn, collection: &str, id: &str) -> Result<Option<Document>, DocumentError> {
    Ok(with_conn!(conn, |c| documents::table
        .find((collection, id))
        .select(Document::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Documents of `collection` with ids after `after` starting with `prefix`, whose
/// top-level fields equal `equals` (compared as JSON values, or as strings); at most
/// `limit`, in id order.
pub async fn list(
    conn: &mut DbConn,
    collection: &str,
    prefix: &str,
    equals: &[(String, String)],
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Document>, DocumentError> {
    let mut out = Vec::new();
    let mut cursor = after.map(str::to_owned);
    // Filters on fields run here, batch by batch, so a page fills even when most fail.
    loop {
        let batch: Vec<Document> = with_conn!(&mut *conn, |c| {
            let mut q = documents::table
                .filter(documents::collection.eq(collection))
                .select(Document::as_select())
                .into_boxed();
            if !prefix.is_empty() {
                let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                q = q.filter(documents::id.like(format!("{escaped}%")).escape('\\'));
            }
            if let Some(a) = &cursor {
                q = q.filter(documents::id.gt(a.clone()));
            }
            q.order(documents::id.asc()).limit(200).load(c).await
        })?;
        let done = batch.len() < 200;
        for doc in batch {
            cursor = Some(doc.id.clone());
            let value: Value = serde_json::from_str(&doc.body).unwrap_or(Value::Null);
            let matches = equals.iter().all(|(field, want)| match value.get(field) {
                Some(Value::String(s)) => s == want,
                Some(other) => serde_json::from_str::<Value>(want).is_ok_and(|w| &w == other),
                None => false,
            });
            if matches {
                out.push(doc);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        if done {
            return Ok(out);
        }
    }
}

/// Sets (or with `None` removes) the collection's JSON Schema; existing documents are
/// not re-checked.
pub async fn set_schema(conn: &mut DbConn, collection: &str, json_schema: Option<&Value>) -> Result<(), DocumentError> {
    if let Some(s) = json_schema {
        let s = s.clone();
        tokio::task::spawn_blocking(move || compile(&s).map(drop))
            .await
            .map_err(|e| DbError::Corrupt(format!("schema compilation stopped: {e}")))??;
    }
    let (collection, text) = (collection.to_owned(), json_schema.map(Value::to_string));
    conn.transaction::<_, DocumentError, _>(async move |c| {
        with_conn!(&mut *c, |c| diesel::delete(collection_schemas::table.find(&collection))
            .execute(c)
            .await)?;
        if let Some(t) = text {
            let now = crate::now();
            with_conn!(&mut *c, |c| diesel::insert_into(collection_schemas::table)
                .values((
                    collection_schemas::collection.eq(&collection),
                    collection_schemas::json_schema.eq(&t),
                    collection_schemas::updated_at.eq(now),
                ))
                .execute(c)
                .await)?;
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    /// jsonschema's own `format: regex` check re-parses the whole pattern once per `\cX`
    /// escape (quadratic): a 1 MB string of them ran for hours. The check used here
    /// refuses long strings and checks the rest with the linear `regex` crate.
    #[test]
    fn format_regex_strings_are_checked_in_linear_time() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"re": {"type": "string", "format": "regex"}}
        });
        let bomb = "\\cA".repeat(1 << 18);
        match validate(&schema, &json!({ "re": bomb })) {
            Err(DocumentError::SchemaViolation(errors)) => {
                assert!(errors.iter().any(|e| e.contains("/re")), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        validate(&schema, &json!({ "re": "^[a-z]+\\d{2,}$" })).unwrap();
        assert!(matches!(
            validate(&schema, &json!({ "re": "(unclosed" })),
            Err(DocumentError::SchemaViolation(_))
        ));
    }
}
