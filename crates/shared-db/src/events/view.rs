//! The audit trail as callers see it: [`AuditEvent`] (with its data as JSON), a page of
//! them, and the query a list or a tail is asked with ([`EventQuery`]: type, subject,
//! time window, cursor, limit, order), checked into an [`EventFilter`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Event, EventFilter};
use crate::paging::{self, Order};

/// One audit event.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    /// Event id (sorts by time); the SSE `id`.
    pub id: String,
    /// When it happened.
    #[serde(serialize_with = "crate::time::rfc3339_micros::serialize")]
    pub occurred_at: DateTime<Utc>,
    /// Dotted type, such as `license.revoked`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who did it: `api_key:<id>`, `license:<id>`, `cli` or `system`.
    pub actor: Option<String>,
    /// What it happened to, such as `license:<id>`.
    pub subject: Option<String>,
    /// Details.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

impl From<Event> for AuditEvent {
    fn from(e: Event) -> Self {
        AuditEvent {
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
            id: e.id,
            occurred_at: e.occurred_at.and_utc(),
            event_type: e.event_type,
            actor: e.actor,
            subject: e.subject,
        }
    }
}

impl AuditEvent {
    /// The event as one Server-Sent Events frame: `id`, `event` (the type), `data` (JSON).
    pub fn sse_frame(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("id: {}\nevent: {}\ndata: {json}\n\n", self.id, self.event_type)
    }
}

/// One page of events.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    /// Events, newest first unless `order=asc`.
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Event filters.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// An exact type, or a prefix ending in `*` (`license.*`).
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", param(rename = "type"))]
    pub event_type: Option<String>,
    /// Only events about this subject (`license:<id>`).
    pub subject: Option<String>,
    /// Only events at or after this time: RFC 3339 (`2026-12-01T09:00:00%2B09:00`; a `+`
    /// left unencoded, which arrives as a space, is read as `+`) or a date (`2026-12-01`,
    /// midnight UTC).
    #[serde(default, deserialize_with = "since")]
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time, in the same forms as `since`.
    #[serde(default, deserialize_with = "until")]
    pub until: Option<DateTime<Utc>>,
    /// From a previous page's `next_cursor` (which keeps its page's order). The stream
    /// also takes an event id here, as it does in `Last-Event-ID`.
    pub cursor: Option<String>,
    /// Page size (1 to 500, default 100).
    pub limit: Option<i64>,
    /// `desc` (newest first, the default) or `asc`; the stream is always oldest first.
    pub order: Option<Order>,
}

/// Why an event query was refused: the message, and the parameter when it is one alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    /// What is wrong, for the caller.
    pub message: String,
    /// The query parameter at fault, when the message is about one.
    pub field: Option<&'static str>,
}

impl QueryError {
    fn new(message: impl Into<String>, field: Option<&'static str>) -> Self {
        QueryError {
            message: message.into(),
            field,
        }
    }
}

fn since<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    time_param("since", d)
}

fn until<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    time_param("until", d)
}

/// A time in a query string: RFC 3339, or a date meaning its midnight UTC; the error
/// names the parameter and the forms it takes.
fn time_param<'de, D: serde::Deserializer<'de>>(name: &str, d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(raw) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    parse_time(&raw).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{name}: `{raw}` is not a date (2026-12-01) or an RFC 3339 time (2026-12-01T09:00:00Z, or \
             2026-12-01T09:00:00%2B09:00 with the + encoded)"
        ))
    })
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(date) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    // An unencoded `+` in a query string arrives as a space.
    let fixed = match raw.rsplit_once(' ') {
        Some((time, zone)) if zone.len() == 5 && zone.as_bytes()[2] == b':' => format!("{time}+{zone}"),
        _ => raw.to_owned(),
    };
    DateTime::parse_from_rfc3339(&fixed).ok().map(|t| t.with_timezone(&Utc))
}

impl EventQuery {
    /// The filter for a page: its order and position from `cursor` (and `order`).
    pub fn page_filter(&self) -> Result<EventFilter, QueryError> {
        let (order, after) = paging::continue_from(self.cursor.as_deref(), self.order)
            .map_err(|e| QueryError::new(format!("cursor: {e}"), Some("cursor")))?;
        self.filter(order, after)
    }

    /// Where a tail resumes: `last_event_id` (the header), else `cursor` (a list page's
    /// cursor in oldest-first order, or an event id). The stream runs oldest first, so
    /// `order=desc` is refused.
    pub fn tail_start(&self, last_event_id: Option<&str>) -> Result<Option<String>, QueryError> {
        if self.order == Some(Order::Desc) {
            return Err(QueryError::new(
                "order: the stream runs oldest first; leave order out or use asc",
                Some("order"),
            ));
        }
        Ok(last_event_id.map(str::to_owned).or_else(|| {
            self.cursor
                .as_deref()
                .map(|c| match paging::continue_from(Some(c), Some(Order::Asc)) {
                    Ok((_, Some(id))) => id,
                    _ => c.to_owned(),
                })
        }))
    }

    /// The filter for a tail (oldest first, its position kept by the tail).
    pub fn tail_filter(&self) -> Result<EventFilter, QueryError> {
        self.filter(Order::Asc, None)
    }

    /// The page cut from `items` read with `filter`: a cursor when the page is full.
    pub fn page(filter: &EventFilter, items: Vec<Event>) -> EventPage {
        let items: Vec<AuditEvent> = items.into_iter().map(AuditEvent::from).collect();
        let next_cursor = (items.len() as i64 == filter.limit)
            .then(|| items.last().map(|e| paging::encode_ordered(filter.order, &e.id)))
            .flatten();
        EventPage { items, next_cursor }
    }

    fn filter(&self, order: Order, after_id: Option<String>) -> Result<EventFilter, QueryError> {
        let limit = paging::limit(self.limit.map(|l| u32::try_from(l).unwrap_or(0)))
            .map_err(|e| QueryError::new(e.to_string(), None))?;
        if let Some(t) = &self.event_type {
            let ok = !t.is_empty()
                && t.len() <= 64
                && t.trim_end_matches('*')
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_');
            if !ok {
                return Err(QueryError::new(
                    "type is a dotted name such as license.revoked, or a prefix such as license.*",
                    None,
                ));
            }
        }
        Ok(EventFilter {
            event_type: self.event_type.clone(),
            subject: self.subject.clone(),
            since: self.since.map(|t| t.naive_utc()),
            until: self.until.map(|t| t.naive_utc()),
            after_id,
            order,
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_in_a_query_string() {
        let rfc = |raw| parse_time(raw).map(|t| t.to_rfc3339());
        assert_eq!(rfc("2026-12-01").as_deref(), Some("2026-12-01T00:00:00+00:00"));
        // An unencoded `+` arrives as a space.
        assert_eq!(
            rfc("2026-12-01T09:00:00 09:00").as_deref(),
            Some("2026-12-01T00:00:00+00:00")
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
