//! Reading one document, and listing a collection a page at a time.

use shared_db::DbConn;
use shared_db::paging;

use super::DocumentService;
use crate::model::{DocFilter, DocPage, DocumentError, matches};
use crate::store::{self, Document};

/// Rows read per query while filtering on fields.
const BATCH: i64 = 200;

impl DocumentService {
    /// One document; [`DocumentError::NotFound`] when there is none.
    pub async fn get(&self, conn: &mut DbConn, collection: &str, id: &str) -> Result<Document, DocumentError> {
        store::get(conn, collection, id).await?.ok_or(DocumentError::NotFound)
    }

    /// One page of `collection` in id order: ids starting with `filter.prefix`, whose
    /// top-level fields equal `filter.equals`.
    pub async fn list(
        &self,
        conn: &mut DbConn,
        collection: &str,
        filter: &DocFilter,
    ) -> Result<DocPage, DocumentError> {
        let limit = paging::limit(filter.limit)?;
        let mut cursor = paging::after(filter.cursor.as_deref())?;
        let want = usize::try_from(limit).unwrap_or(0) + 1;
        let mut out = Vec::new();
        // Filters on fields run here, batch by batch, so a page fills even when most fail.
        loop {
            let batch = store::batch(conn, collection, &filter.prefix, cursor.as_deref(), BATCH).await?;
            let done = batch.len() < usize::try_from(BATCH).unwrap_or(0);
            for doc in batch {
                cursor = Some(doc.id.clone());
                if matches(&doc, &filter.equals) {
                    out.push(doc);
                    if out.len() == want {
                        break;
                    }
                }
            }
            if done || out.len() == want {
                break;
            }
        }
        let (items, next_cursor) = paging::page(out, limit, |d: &Document| paging::encode(&d.id));
        Ok(DocPage { items, next_cursor })
    }
}
