//! The append-only audit trail: one row per state change, written in the same
//! transaction as the change itself.
//!
//! Every event is also the bridge's to dispatch: it is appended marked `undispatched`
//! (in the same insert, so it is marked exactly when it commits), and the bridge claims
//! marked events ([`claim_undispatched`]) and clears the mark ([`mark_dispatched`]) in
//! the transaction that queues their deliveries. No clock decides what was seen, so an
//! event whose transaction commits late, or that a replica with a lagging clock wrote,
//! is dispatched like any other.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::schema::events;
use crate::{DbConn, DbError, with_conn};

mod tail;
mod view;

pub use tail::{KeyCheck, Tail};
pub use view::{AuditEvent, EventPage, EventQuery, QueryError};

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = events, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub struct Event {
    /// UUIDv7, so ids sort by time.
    pub id: String,
    /// When it happened (UTC).
    #[serde(serialize_with = "crate::time::rfc3339_micros::serialize")]
    pub occurred_at: NaiveDateTime,
    /// Dotted type, such as `api_key.created`.
    pub event_type: String,
    /// Who did it: `api_key:<id>`, `license:<id>`, `cli` or `system`.
    pub actor: Option<String>,
    /// What it happened to, such as `api_key:<id>`.
    pub subject: Option<String>,
    /// Event details as JSON text; never holds a secret.
    pub data: String,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// Dotted type, such as `api_key.created`.
    pub event_type: &'a str,
    /// Who did it.
    pub actor: Option<&'a str>,
    /// What it happened to.
    pub subject: Option<&'a str>,
    /// Details; must not hold secrets.
    pub data: serde_json::Value,
}

/// Appends one event and returns it. Call it inside the transaction that makes the change.
pub async fn append(conn: &mut DbConn, event: NewEvent<'_>) -> Result<Event, DbError> {
    let row = Event {
        id: crate::new_id(),
        occurred_at: crate::now(),
        event_type: event.event_type.to_owned(),
        actor: event.actor.map(str::to_owned),
        subject: event.subject.map(str::to_owned),
        data: event.data.to_string(),
    };
    with_conn!(conn, |c| diesel::insert_into(events::table)
        .values((&row, events::undispatched.eq(true)))
        .execute(c)
        .await)?;
    Ok(row)
}

/// Appends an event about `subject` (such as `license:<id>`) by `actor`; the short form
/// of [`append`] the domain crates use.
pub async fn record(
    conn: &mut DbConn,
    event_type: &str,
    actor: &str,
    subject: &str,
    data: serde_json::Value,
) -> Result<(), DbError> {
    append(
        conn,
        NewEvent {
            event_type,
            actor: Some(actor),
            subject: Some(subject),
            data,
        },
    )
    .await?;
    Ok(())
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// An exact type, or a prefix ending in `*` (`license.*`).
    pub event_type: Option<String>,
    /// Only events about this subject.
    pub subject: Option<String>,
    /// Only events at or after this time.
    pub since: Option<NaiveDateTime>,
    /// Only events before this time.
    pub until: Option<NaiveDateTime>,
    /// Only events past this id in `order` (ids sort by time).
    pub after_id: Option<String>,
    /// Newest first (the default) or oldest first.
    pub order: crate::paging::Order,
    /// At most this many.
    pub limit: i64,
}

/// Events matching `filter`, in its order.
pub async fn list(conn: &mut DbConn, filter: &EventFilter) -> Result<Vec<Event>, DbError> {
    let rows = with_conn!(conn, |c| {
        let mut q = events::table.select(Event::as_select()).into_boxed();
        match filter.event_type.as_deref() {
            Some(t) if t.ends_with('*') => {
                let prefix = t.trim_end_matches('*').replace('%', "\\%").replace('_', "\\_");
                q = q.filter(events::event_type.like(format!("{prefix}%")).escape('\\'));
            }
            Some(t) => q = q.filter(events::event_type.eq(t.to_owned())),
            None => {}
        }
        if let Some(s) = &filter.subject {
            q = q.filter(events::subject.eq(s.clone()));
        }
        if let Some(t) = filter.since {
            q = q.filter(events::occurred_at.ge(t));
        }
        if let Some(t) = filter.until {
            q = q.filter(events::occurred_at.lt(t));
        }
        crate::page_in_order!(q, events::id, filter.order, &filter.after_id)
            .limit(filter.limit.max(1))
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// The newest event's id, if any.
pub async fn latest_id(conn: &mut DbConn) -> Result<Option<String>, DbError> {
    let id = with_conn!(conn, |c| events::table
        .select(diesel::dsl::max(events::id))
        .first::<Option<String>>(c)
        .await)?;
    Ok(id)
}

/// Events about one subject, oldest first.
pub async fn for_subject(conn: &mut DbConn, subject: &str) -> Result<Vec<Event>, DbError> {
    let rows = with_conn!(conn, |c| events::table
        .filter(events::subject.eq(subject))
        .order(events::id.asc())
        .select(Event::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// Whether an event waits for the bridge (a plain read: takes no lock, and does not see
/// events of transactions still open).
pub async fn any_undispatched(conn: &mut DbConn) -> Result<bool, DbError> {
    let found = with_conn!(conn, |c| events::table
        .filter(events::undispatched.eq(true))
        .select(events::id)
        .first::<String>(c)
        .await
        .optional())?;
    Ok(found.is_some())
}

/// Claims up to `limit` events waiting for the bridge, oldest first. Call it inside the
/// transaction that queues their deliveries and then calls [`mark_dispatched`].
///
/// On MySQL the rows are locked (`FOR UPDATE SKIP LOCKED`): a replica skips the events
/// another one holds, and events of transactions still open. Start the transaction with
/// [`prefer_read_committed`] so the claim takes no gap locks (which would hold up
/// appends until it commits). On SQLite the caller's transaction (`BEGIN IMMEDIATE`)
/// holds the write lock, so one claimer runs at a time.
pub async fn claim_undispatched(conn: &mut DbConn, limit: i64) -> Result<Vec<Event>, DbError> {
    // A macro, not a value: the selection's backend is fixed per arm.
    macro_rules! waiting {
        () => {
            events::table
                .filter(events::undispatched.eq(true))
                .order(events::id.asc())
                .limit(limit.max(1))
                .select(Event::as_select())
        };
    }
    let rows = match conn {
        DbConn::Mysql(c) => waiting!().for_update().skip_locked().load(c).await?,
        DbConn::Sqlite(c) => waiting!().load(c).await?,
    };
    Ok(rows)
}

/// Clears the outbox mark of claimed events.
pub async fn mark_dispatched(conn: &mut DbConn, ids: &[String]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    with_conn!(conn, |c| diesel::update(events::table.filter(events::id.eq_any(ids)))
        .set(events::undispatched.eq(None::<bool>))
        .execute(c)
        .await)?;
    Ok(())
}

/// On MySQL, makes the connection's next transaction READ COMMITTED (the claim's
/// locking read then locks only the rows it returns); nothing on SQLite.
pub async fn prefer_read_committed(conn: &mut DbConn) -> Result<(), DbError> {
    if let DbConn::Mysql(c) = conn {
        diesel_async::SimpleAsyncConnection::batch_execute(c, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
    }
    Ok(())
}

/// The first id (UUIDv7, time first) that could belong to an event at or after `t`:
/// every event before `t` has an id below it.
fn id_floor(t: chrono::DateTime<chrono::Utc>) -> String {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    let hex = format!("{ms:012x}");
    format!("{}-{}", &hex[..8], &hex[8..12])
}

/// Removes at most `batch` events that occurred before `before` and that the bridge has
/// dispatched; returns how many. Walks the primary key (ids sort by time), so it locks
/// only the rows it removes; call it again until it returns less than `batch`.
pub async fn prune(conn: &mut DbConn, before: chrono::DateTime<chrono::Utc>, batch: i64) -> Result<u64, DbError> {
    let floor = id_floor(before);
    let cutoff = before.naive_utc();
    let ids: Vec<String> = with_conn!(&mut *conn, |c| events::table
        .select(events::id)
        .filter(events::id.lt(&floor))
        .filter(events::occurred_at.lt(cutoff))
        .filter(events::undispatched.is_null())
        .order(events::id.asc())
        .limit(batch)
        .load(c)
        .await)?;
    if ids.is_empty() {
        return Ok(0);
    }
    let n = with_conn!(conn, |c| diesel::delete(events::table.filter(events::id.eq_any(&ids)))
        .execute(c)
        .await)?;
    Ok(n as u64)
}
