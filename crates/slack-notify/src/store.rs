//! Slack messages' rows and every query on them: the only place that touches diesel.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::paging::Order;
use shared_db::{DbConn, DbError, with_conn};

use crate::model::{MessageFilter, MessageStatus, NotifyError, PostMessage, SlackMessage};
use crate::schema::slack_messages;

impl From<diesel::result::Error> for NotifyError {
    fn from(e: diesel::result::Error) -> Self {
        NotifyError::Db(e.into())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = slack_messages, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) channel: String,
    pub(crate) level: String,
    pub(crate) title: String,
    pub(crate) request: String,
    pub(crate) status: String,
    pub(crate) slack_channel: Option<String>,
    pub(crate) ts: Option<String>,
    pub(crate) thread_ts: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) created_by: Option<String>,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
    pub(crate) posted_at: Option<NaiveDateTime>,
}

impl Row {
    pub(crate) fn request(&self) -> Result<PostMessage, NotifyError> {
        serde_json::from_str(&self.request)
            .map_err(|e| NotifyError::Db(DbError::Corrupt(format!("slack message {}: {e}", self.id))))
    }

    pub(crate) fn into_message(self) -> Result<SlackMessage, NotifyError> {
        let request = self.request()?;
        Ok(SlackMessage {
            level: request.level,
            status: MessageStatus::parse(&self.status).unwrap_or(MessageStatus::Failed),
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
            posted_at: self.posted_at.map(|t| t.and_utc()),
            id: self.id,
            channel: self.channel,
            title: self.title,
            slack_channel: self.slack_channel,
            ts: self.ts,
            thread_ts: self.thread_ts,
            error: self.error,
            request,
        })
    }
}

/// How many messages are in each status.
pub(crate) async fn count_by_status(conn: &mut DbConn) -> Result<Vec<(String, i64)>, NotifyError> {
    use diesel::dsl::count_star;
    Ok(with_conn!(conn, |c| slack_messages::table
        .group_by(slack_messages::status)
        .select((slack_messages::status, count_star()))
        .load::<(String, i64)>(c)
        .await)?)
}

pub(crate) async fn find(conn: &mut DbConn, id: &str) -> Result<Option<Row>, NotifyError> {
    Ok(with_conn!(conn, |c| slack_messages::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .await
        .optional())?)
}

pub(crate) async fn note_error(conn: &mut DbConn, id: &str, error: &str) -> Result<(), NotifyError> {
    let now = shared_db::now();
    with_conn!(conn, |c| diesel::update(slack_messages::table.find(id))
        .set((
            slack_messages::error.eq(Some(error)),
            slack_messages::updated_at.eq(now)
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Stores a new message.
pub(crate) async fn insert(c: &mut DbConn, row: &Row) -> Result<(), NotifyError> {
    with_conn!(&mut *c, |c| diesel::insert_into(slack_messages::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

/// Up to `limit` messages matching `filter`, in `order` after `after`.
pub(crate) async fn list(
    conn: &mut DbConn,
    filter: &MessageFilter,
    order: Order,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<Row>, NotifyError> {
    Ok(with_conn!(conn, |c| {
        let mut q = slack_messages::table.select(Row::as_select()).into_boxed();
        if let Some(ch) = &filter.channel {
            q = q.filter(slack_messages::channel.eq(ch.trim()));
        }
        if let Some(s) = filter.status {
            q = q.filter(slack_messages::status.eq(s.as_str()));
        }
        if let Some(l) = filter.level {
            q = q.filter(slack_messages::level.eq(l.as_str()));
        }
        shared_db::page_in_order!(q, slack_messages::id, order, after)
            .limit(limit)
            .load(c)
            .await
    })?)
}

/// Stores a changed request (and its level and title).
pub(crate) async fn set_request(
    c: &mut DbConn,
    id: &str,
    req: &PostMessage,
    now: NaiveDateTime,
) -> Result<(), NotifyError> {
    with_conn!(&mut *c, |c| diesel::update(slack_messages::table.find(id))
        .set((
            slack_messages::level.eq(req.level.as_str()),
            slack_messages::title.eq(req.title.trim()),
            slack_messages::request.eq(serde_json::to_string(req).unwrap_or_default()),
            slack_messages::updated_at.eq(now),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Where Slack (or the dev sink) put a delivered message.
pub(crate) struct Posted<'a> {
    pub(crate) status: MessageStatus,
    pub(crate) channel: &'a str,
    pub(crate) ts: &'a str,
    pub(crate) thread_ts: Option<&'a String>,
}

/// Records a message as delivered.
pub(crate) async fn set_posted(c: &mut DbConn, id: &str, p: Posted<'_>, now: NaiveDateTime) -> Result<(), NotifyError> {
    with_conn!(&mut *c, |c| diesel::update(slack_messages::table.find(id))
        .set((
            slack_messages::status.eq(p.status.as_str()),
            slack_messages::slack_channel.eq(Some(p.channel)),
            slack_messages::ts.eq(Some(p.ts)),
            slack_messages::thread_ts.eq(p.thread_ts),
            slack_messages::error.eq(None::<String>),
            slack_messages::posted_at.eq(Some(now)),
            slack_messages::updated_at.eq(now),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Clears a message's last error (after an update reached Slack).
pub(crate) async fn clear_error(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), NotifyError> {
    with_conn!(conn, |c| diesel::update(slack_messages::table.find(id))
        .set((
            slack_messages::error.eq(None::<String>),
            slack_messages::updated_at.eq(now)
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Marks a message failed with `reason`.
pub(crate) async fn set_failed(c: &mut DbConn, id: &str, reason: &str, now: NaiveDateTime) -> Result<(), NotifyError> {
    with_conn!(&mut *c, |c| diesel::update(slack_messages::table.find(id))
        .set((
            slack_messages::status.eq(MessageStatus::Failed.as_str()),
            slack_messages::error.eq(Some(reason)),
            slack_messages::updated_at.eq(now),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Retention: removes at most `batch` finished messages (posted, captured or failed)
/// last changed before `before`; a queued one is never removed. Returns how many; call
/// again until it returns less than `batch`.
pub async fn prune_finished(
    conn: &mut DbConn,
    before: chrono::DateTime<chrono::Utc>,
    batch: i64,
) -> Result<u64, DbError> {
    let queued = MessageStatus::Queued.as_str();
    let ids = shared_db::prunable_ids!(
        conn,
        slack_messages,
        id,
        updated_at,
        before.naive_utc(),
        batch,
        slack_messages::status.ne(queued)
    )?;
    if ids.is_empty() {
        return Ok(0);
    }
    let n = with_conn!(conn, |c| diesel::delete(
        slack_messages::table
            .filter(slack_messages::id.eq_any(&ids))
            .filter(slack_messages::status.ne(queued))
    )
    .execute(c)
    .await)?;
    Ok(n as u64)
}
