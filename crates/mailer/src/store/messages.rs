//! Messages: stored, found, listed, and their status moved along.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::paging::Order;
use shared_db::{DbConn, with_conn};

use super::{Head, Row};
use crate::address::Mailbox;
use crate::model::{EmailFilter, EmailStatus, MailError};
use crate::schema::email_messages;

/// Stores a message row.
pub(crate) async fn insert_message(c: &mut DbConn, row: &Row) -> Result<(), MailError> {
    with_conn!(&mut *c, |c| diesel::insert_into(email_messages::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// A message without its MIME.
pub(crate) async fn find_head(conn: &mut DbConn, id: &str) -> Result<Option<Head>, MailError> {
    Ok(with_conn!(conn, |c| email_messages::table
        .find(id)
        .select(Head::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The ids and statuses of a batch's messages, by id.
pub(crate) async fn batch_items(conn: &mut DbConn, batch: &str) -> Result<Vec<(String, String)>, MailError> {
    Ok(with_conn!(conn, |c| email_messages::table
        .filter(email_messages::batch_id.eq(batch))
        .order(email_messages::id.asc())
        .select((email_messages::id, email_messages::status))
        .load(c)
        .await)?)
}

/// How many messages with ids from `from_id` (inclusive) to `to_id` (exclusive) are in
/// each status: a range of the primary key (ids sort by time).
pub(crate) async fn count_by_status_between(
    conn: &mut DbConn,
    from_id: &str,
    to_id: &str,
) -> Result<Vec<(String, i64)>, MailError> {
    use diesel::dsl::count_star;
    Ok(with_conn!(conn, |c| email_messages::table
        .filter(email_messages::id.ge(from_id).and(email_messages::id.lt(to_id)))
        .group_by(email_messages::status)
        .select((email_messages::status, count_star()))
        .load::<(String, i64)>(c)
        .await)?)
}

/// A message's MIME.
pub(crate) async fn raw_mime(conn: &mut DbConn, id: &str) -> Result<Option<Vec<u8>>, MailError> {
    Ok(with_conn!(conn, |c| email_messages::table
        .find(id)
        .select(email_messages::raw_mime)
        .first(c)
        .await
        .optional())?)
}

/// A message's sender and MIME.
pub(crate) async fn source(conn: &mut DbConn, id: &str) -> Result<Option<(String, Vec<u8>)>, MailError> {
    Ok(with_conn!(conn, |c| email_messages::table
        .find(id)
        .select((email_messages::from_addr, email_messages::raw_mime))
        .first(c)
        .await
        .optional())?)
}

/// Up to `limit` messages matching `filter` (sent by `from`), in `order` after `after`.
pub(crate) async fn list_heads(
    conn: &mut DbConn,
    filter: &EmailFilter,
    from: Option<&Mailbox>,
    order: Order,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<Head>, MailError> {
    Ok(with_conn!(conn, |c| {
        let mut q = email_messages::table.select(Head::as_select()).into_boxed();
        if let Some(s) = filter.status {
            q = q.filter(email_messages::status.eq(s.as_str()));
        }
        if let Some(f) = &from {
            q = q.filter(email_messages::from_addr.eq(f.to_string()));
        }
        if let Some(t) = &filter.template {
            q = q.filter(email_messages::template.eq(t));
        }
        if let Some(b) = &filter.batch_id {
            q = q.filter(email_messages::batch_id.eq(b));
        }
        shared_db::page_in_order!(q, email_messages::id, order, after)
            .limit(limit)
            .load(c)
            .await
    })?)
}

/// Moves a queued message to `sending`; the number of rows changed.
pub(crate) async fn mark_sending(c: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<usize, MailError> {
    Ok(with_conn!(&mut *c, |c| diesel::update(
        email_messages::table
            .find(id)
            .filter(email_messages::status.eq(EmailStatus::Queued.as_str()))
    )
    .set((
        email_messages::status.eq(EmailStatus::Sending.as_str()),
        email_messages::updated_at.eq(now)
    ))
    .execute(c)
    .await)?)
}

/// Touches a message row (locking it for the rest of the transaction).
pub(crate) async fn touch(c: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), MailError> {
    with_conn!(&mut *c, |c| diesel::update(email_messages::table.find(id))
        .set(email_messages::updated_at.eq(now))
        .execute(c)
        .await)?;
    Ok(())
}

/// Sets a queued or sending message's status and error.
pub(crate) async fn settle(
    c: &mut DbConn,
    id: &str,
    status: EmailStatus,
    error: &Option<String>,
) -> Result<(), MailError> {
    with_conn!(&mut *c, |c| diesel::update(email_messages::table.find(id).filter(
        email_messages::status.eq_any([EmailStatus::Queued.as_str(), EmailStatus::Sending.as_str()])
    ))
    .set((
        email_messages::status.eq(status.as_str()),
        email_messages::error.eq(error),
    ))
    .execute(c)
    .await)?;
    Ok(())
}

/// Sets when a message was first sent, unless it already was.
pub(crate) async fn set_sent_at(c: &mut DbConn, id: &str, at: NaiveDateTime) -> Result<(), MailError> {
    with_conn!(&mut *c, |c| diesel::update(
        email_messages::table.find(id).filter(email_messages::sent_at.is_null())
    )
    .set(email_messages::sent_at.eq(Some(at)))
    .execute(c)
    .await)?;
    Ok(())
}

/// Moves a message to `status` if it is in one of `from`.
pub(crate) async fn advance(c: &mut DbConn, id: &str, from: &[&str], status: EmailStatus) -> Result<(), MailError> {
    let now = shared_db::now();
    with_conn!(&mut *c, |c| diesel::update(
        email_messages::table
            .find(id)
            .filter(email_messages::status.eq_any(from))
    )
    .set((
        email_messages::status.eq(status.as_str()),
        email_messages::updated_at.eq(now)
    ))
    .execute(c)
    .await)?;
    Ok(())
}

/// Notes the last error on a message.
pub(crate) async fn note_error(conn: &mut DbConn, email_id: &str, error: &str) -> Result<(), MailError> {
    let now = shared_db::now();
    with_conn!(conn, |c| diesel::update(email_messages::table.find(email_id))
        .set((
            email_messages::error.eq(Some(error)),
            email_messages::updated_at.eq(now)
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Retention: removes at most `batch` finished messages (neither queued nor sending)
/// last changed before `before`, with their deliveries; a message still queued or sending
/// is never removed. Returns how many messages; call again until it returns less than
/// `batch`. Each batch is one short transaction.
pub async fn prune_finished(
    conn: &mut DbConn,
    before: chrono::DateTime<chrono::Utc>,
    batch: i64,
) -> Result<u64, shared_db::DbError> {
    use crate::schema::email_deliveries;
    let unfinished = [EmailStatus::Queued.as_str(), EmailStatus::Sending.as_str()];
    let ids = shared_db::prunable_ids!(
        conn,
        email_messages,
        id,
        updated_at,
        before.naive_utc(),
        batch,
        email_messages::status.ne_all(unfinished)
    )?;
    if ids.is_empty() {
        return Ok(0);
    }
    let ids = &ids;
    let n = shared_db::transaction!(conn, shared_db::DbError, |c| {
        with_conn!(&mut *c, |c| diesel::delete(
            email_deliveries::table.filter(email_deliveries::email_id.eq_any(ids))
        )
        .execute(c)
        .await)?;
        // Only those still finished: one a retry re-queued meanwhile stays.
        let n = with_conn!(c, |c| diesel::delete(
            email_messages::table
                .filter(email_messages::id.eq_any(ids))
                .filter(email_messages::status.ne_all(unfinished))
        )
        .execute(c)
        .await)?;
        Ok(n)
    })?;
    Ok(n as u64)
}
