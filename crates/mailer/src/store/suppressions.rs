//! The suppression list, by lowercase address.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::{DbConn, with_conn};

use super::SuppressionRow;
use crate::model::{MailError, SuppressionReason};
use crate::schema::email_suppressions;

/// Adds an address to the list if absent; the number of rows added.
pub(crate) async fn suppress(
    c: &mut DbConn,
    address: &str,
    reason: SuppressionReason,
    detail: Option<&str>,
    email_id: Option<&str>,
) -> Result<usize, MailError> {
    let row = SuppressionRow {
        address: address.to_owned(),
        reason: reason.as_str().to_owned(),
        detail: detail.map(|d| d.chars().take(1000).collect()),
        email_id: email_id.map(str::to_owned),
        created_at: shared_db::now(),
    };
    Ok(with_conn!(c, |c| diesel::insert_or_ignore_into(
        email_suppressions::table
    )
    .values(&row)
    .execute(c)
    .await)?)
}

/// One suppression.
pub(crate) async fn find_suppression(conn: &mut DbConn, key: &str) -> Result<Option<SuppressionRow>, MailError> {
    Ok(with_conn!(conn, |c| email_suppressions::table
        .find(key)
        .select(SuppressionRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Up to `limit` suppressions (for `reason`) by address, after `after`.
pub(crate) async fn list_suppressions(
    conn: &mut DbConn,
    reason: Option<SuppressionReason>,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<SuppressionRow>, MailError> {
    Ok(with_conn!(conn, |c| {
        let mut q = email_suppressions::table
            .select(SuppressionRow::as_select())
            .into_boxed();
        if let Some(r) = reason {
            q = q.filter(email_suppressions::reason.eq(r.as_str()));
        }
        if let Some(a) = after {
            q = q.filter(email_suppressions::address.gt(a));
        }
        q.order(email_suppressions::address.asc()).limit(limit).load(c).await
    })?)
}

/// Lifts a suppression; the number of rows deleted.
pub(crate) async fn delete_suppression(c: &mut DbConn, key: &str) -> Result<usize, MailError> {
    Ok(with_conn!(&mut *c, |c| diesel::delete(
        email_suppressions::table.find(key)
    )
    .execute(c)
    .await)?)
}
