//! The rows: documents and collection schemas (the only module that touches diesel).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::schema::{collection_schemas, documents};
use shared_db::{DbConn, DbError, with_conn};

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

/// The document, read under a write lock within the transaction (MySQL `FOR UPDATE`;
/// SQLite's `BEGIN IMMEDIATE` already serialises writers).
pub async fn lock(conn: &mut DbConn, collection: &str, id: &str) -> Result<Option<Document>, DbError> {
    let q = documents::table.find((collection.to_owned(), id.to_owned()));
    Ok(shared_db::lock_first!(conn, q.select(Document::as_select()))?)
}

/// One document.
pub async fn get(conn: &mut DbConn, collection: &str, id: &str) -> Result<Option<Document>, DbError> {
    Ok(with_conn!(conn, |c| documents::table
        .find((collection, id))
        .select(Document::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Stores a new document.
pub async fn insert(conn: &mut DbConn, doc: &Document) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(documents::table)
        .values(doc)
        .execute(c)
        .await)?;
    Ok(())
}

/// Stores a document's new version, body and time.
pub async fn update(conn: &mut DbConn, doc: &Document) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(
        documents::table.find((&doc.collection, &doc.id))
    )
    .set((
        documents::version.eq(doc.version),
        documents::body.eq(&doc.body),
        documents::updated_at.eq(doc.updated_at),
    ))
    .execute(c)
    .await)?;
    Ok(())
}

/// Deletes a document.
pub async fn delete(conn: &mut DbConn, collection: &str, id: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::delete(documents::table.find((collection, id)))
        .execute(c)
        .await)?;
    Ok(())
}

/// Up to `limit` documents of `collection` with ids after `after` starting with `prefix`,
/// in id order.
pub async fn batch(
    conn: &mut DbConn,
    collection: &str,
    prefix: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Document>, DbError> {
    Ok(with_conn!(conn, |c| {
        let mut q = documents::table
            .filter(documents::collection.eq(collection))
            .select(Document::as_select())
            .into_boxed();
        if !prefix.is_empty() {
            let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            q = q.filter(documents::id.like(format!("{escaped}%")).escape('\\'));
        }
        if let Some(a) = after {
            q = q.filter(documents::id.gt(a.to_owned()));
        }
        q.order(documents::id.asc()).limit(limit).load(c).await
    })?)
}

/// The collection's schema as stored, if it has one.
pub async fn schema_text(conn: &mut DbConn, collection: &str) -> Result<Option<String>, DbError> {
    Ok(with_conn!(conn, |c| collection_schemas::table
        .find(collection)
        .select(collection_schemas::json_schema)
        .first(c)
        .await
        .optional())?)
}

/// Removes the collection's schema.
pub async fn delete_schema(conn: &mut DbConn, collection: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::delete(collection_schemas::table.find(collection))
        .execute(c)
        .await)?;
    Ok(())
}

/// Stores the collection's schema (after [`delete_schema`]).
pub async fn insert_schema(conn: &mut DbConn, collection: &str, text: &str, at: NaiveDateTime) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(collection_schemas::table)
        .values((
            collection_schemas::collection.eq(collection),
            collection_schemas::json_schema.eq(text),
            collection_schemas::updated_at.eq(at),
        ))
        .execute(c)
        .await)?;
    Ok(())
}
