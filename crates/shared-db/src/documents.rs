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
    let text: Option<String> = with_conn!(conn, |c| collection_schemas::table
        .find(collection)
        .select(collection_schemas::json_schema)
        .first(c)
        .await
        .optional())?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

fn validate(schema: &Value, body: &Value) -> Result<(), DocumentError> {
    let validator = jsonschema::validator_for(schema).map_err(|e| DocumentError::InvalidSchema(e.to_string()))?;
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

/// Writes a document of at most `max_bytes` under `conditions` in one transaction with
/// its audit event; returns it and whether it was created.
pub async fn write(
    conn: &mut DbConn,
    collection: &str,
    id: &str,
    change: Change,
    conditions: Conditions,
    max_bytes: usize,
    actor: &str,
) -> Result<(Document, bool), DocumentError> {
    let (collection, id, actor) = (collection.to_owned(), id.to_owned(), actor.to_owned());
    conn.transaction::<_, DocumentError, _>(async move |c| {
        let current = lock(c, &collection, &id).await?;
        conditions.check(current.as_ref().map(|d| d.version))?;
        let body = match change {
            Change::Replace(v) => v,
            Change::MergePatch(patch) => {
                let Some(doc) = &current else {
                    return Err(DocumentError::NotFound);
                };
                let mut value: Value = serde_json::from_str(&doc.body).map_err(|e| DbError::Corrupt(e.to_string()))?;
                json_patch::merge(&mut value, &patch);
                value
            }
        };
        if let Some(s) = schema(c, &collection).await? {
            validate(&s, &body)?;
        }
        let now = crate::now();
        let text = body.to_string();
        if text.len() > max_bytes {
            return Err(DocumentError::TooLarge {
                size: text.len(),
                limit: max_bytes,
            });
        }
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
        Ok((doc, created))
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
        jsonschema::validator_for(s).map_err(|e| DocumentError::InvalidSchema(e.to_string()))?;
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
