//! The append-only audit trail: one row per state change, written in the same
//! transaction as the change itself.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::schema::events;
use crate::{DbConn, DbError, with_conn};

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = events, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub struct Event {
    /// UUIDv7, so ids sort by time.
    pub id: String,
    /// When it happened (UTC).
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
        .values(&row)
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
