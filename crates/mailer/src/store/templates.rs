//! Templates by name.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::{DbConn, with_conn};

use super::TemplateRow;
use crate::model::MailError;
use crate::schema::email_templates;

/// One template.
pub(crate) async fn find_template(conn: &mut DbConn, name: &str) -> Result<Option<TemplateRow>, MailError> {
    Ok(with_conn!(conn, |c| email_templates::table
        .find(name)
        .select(TemplateRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Stores a new template.
pub(crate) async fn insert_template(c: &mut DbConn, row: &TemplateRow) -> Result<(), MailError> {
    with_conn!(&mut *c, |c| diesel::insert_into(email_templates::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// Replaces a template.
pub(crate) async fn update_template(c: &mut DbConn, row: &TemplateRow) -> Result<(), MailError> {
    with_conn!(&mut *c, |c| diesel::update(email_templates::table.find(&row.name))
        .set(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// Up to `limit` templates by name, after `after`.
pub(crate) async fn list_templates(
    conn: &mut DbConn,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<TemplateRow>, MailError> {
    Ok(with_conn!(conn, |c| {
        let mut q = email_templates::table.select(TemplateRow::as_select()).into_boxed();
        if let Some(a) = after {
            q = q.filter(email_templates::name.gt(a));
        }
        q.order(email_templates::name.asc()).limit(limit).load(c).await
    })?)
}

/// Deletes a template; the number of rows deleted.
pub(crate) async fn delete_template(c: &mut DbConn, name: &str) -> Result<usize, MailError> {
    Ok(with_conn!(&mut *c, |c| diesel::delete(
        email_templates::table.find(name)
    )
    .execute(c)
    .await)?)
}
