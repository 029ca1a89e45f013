//! Writing a document (`PUT` replaces, `PATCH` merges) under its preconditions, checked
//! against the collection's schema, with its `document.written` event.

use serde_json::Value;
use shared_db::{DbConn, DbError, events};

use super::DocumentService;
use super::validate::validate_off_worker;
use crate::model::{Change, Conditions, DocumentError, apply, sized};
use crate::store::{self, Document};

/// How often a write re-reads and re-validates when the document or the schema
/// changed while it validated.
const WRITE_ATTEMPTS: usize = 5;

/// What was validated outside the transaction.
struct Checked {
    /// The version the body was made from.
    version: Option<i64>,
    /// The schema it was validated against (as stored).
    schema: Option<String>,
    /// The body.
    text: String,
}

impl DocumentService {
    /// Writes a document under `conditions` in one transaction with its audit event;
    /// returns it and whether it was created.
    ///
    /// The collection's schema is checked before the write transaction opens, on a
    /// blocking thread, so validation never holds the database's write lock nor an async
    /// worker; the transaction then makes sure the schema, and for a merge patch the
    /// document, are still what was validated, and starts over when they changed. The
    /// transaction runs again when it lost a lock race.
    pub async fn write(
        &self,
        conn: &mut DbConn,
        collection: &str,
        id: &str,
        change: Change,
        conditions: Conditions,
        actor: &str,
    ) -> Result<(Document, bool), DocumentError> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = store::get(conn, collection, id).await?;
            conditions.check(current.as_ref().map(|d| d.version))?;
            let body = apply(&change, current.as_ref())?;
            let text = sized(&body, self.max_bytes)?;
            let schema = store::schema_text(conn, collection).await?;
            if let Some(s) = &schema {
                let s: Value = serde_json::from_str(s).map_err(|e| DbError::Corrupt(e.to_string()))?;
                validate_off_worker(s, body).await?;
            }
            let checked = Checked {
                version: current.map(|d| d.version),
                schema,
                text,
            };
            if let Some(done) = self
                .commit(conn, collection, id, &change, conditions, actor, &checked)
                .await?
            {
                return Ok(done);
            }
        }
        Err(DocumentError::Contended)
    }

    /// The write transaction; `None` when the schema, or the document a merge patch was
    /// applied to, changed since `checked` was validated.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        conn: &mut DbConn,
        collection: &str,
        id: &str,
        change: &Change,
        conditions: Conditions,
        actor: &str,
        checked: &Checked,
    ) -> Result<Option<(Document, bool)>, DocumentError> {
        let max_bytes = self.max_bytes;
        shared_db::transaction!(conn, DocumentError, |c| {
            let current = store::lock(c, collection, id).await?;
            let version = current.as_ref().map(|d| d.version);
            conditions.check(version)?;
            if store::schema_text(c, collection).await? != checked.schema {
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
                _ => checked.text.clone(),
            };
            let now = shared_db::now();
            let doc = match current {
                Some(old) => {
                    let doc = Document {
                        version: old.version + 1,
                        body: text,
                        updated_at: now,
                        ..old
                    };
                    store::update(c, &doc).await?;
                    doc
                }
                None => {
                    let doc = Document {
                        collection: collection.to_owned(),
                        id: id.to_owned(),
                        version: 1,
                        body: text,
                        created_at: now,
                        updated_at: now,
                    };
                    store::insert(c, &doc).await?;
                    doc
                }
            };
            let subject = format!("document:{collection}/{id}");
            events::record(
                c,
                "document.written",
                actor,
                &subject,
                serde_json::json!({ "version": doc.version }),
            )
            .await?;
            let created = doc.version == 1;
            Ok(Some((doc, created)))
        })
    }
}
