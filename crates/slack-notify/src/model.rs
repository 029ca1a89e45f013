//! Slack messages as the API shows them, the checks of what a caller sends, and the
//! service's errors ([`NotifyError`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared_db::DbError;
use shared_db::paging::PagingError;

use crate::layout::{self, Field, Level, Link, Mention};

/// A message to post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// Channel id (`C0123ABCD`) or name (`#alerts`); the configured default when absent.
    #[serde(default)]
    pub channel: Option<String>,
    /// `debug`, `info`, `success`, `warning`, `error` or `critical`.
    pub level: Level,
    /// The header (1 to 250 characters; shown up to 150).
    pub title: String,
    /// The body (mrkdwn is escaped; cut at 3,000 characters).
    #[serde(default)]
    pub text: Option<String>,
    /// Key/value pairs in two columns (at most 20).
    #[serde(default, deserialize_with = "crate::layout::field_list::deserialize")]
    pub fields: Vec<Field>,
    /// Link buttons (at most 5, http or https).
    #[serde(default)]
    pub links: Vec<Link>,
    /// The service that raised it.
    #[serde(default)]
    pub source: Option<String>,
    /// The environment (`production`, `staging`...).
    #[serde(default)]
    pub environment: Option<String>,
    /// Reply in the thread of this message: our message id or a Slack `ts`.
    #[serde(default)]
    pub thread_of: Option<String>,
    /// For `critical` only: `here`, `channel`, `subteam:<group id>` or `user:<user id>`.
    #[serde(default)]
    pub mention: Option<String>,
}

/// Changes to a message; given fields replace the old ones. A queued message is sent
/// with them; a posted one is updated in Slack (`chat.update`), a captured one in the dev
/// sink.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MessagePatch {
    /// New level (for instance `success` once resolved).
    #[serde(default)]
    pub level: Option<Level>,
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New body.
    #[serde(default)]
    pub text: Option<String>,
    /// New fields.
    #[serde(default, deserialize_with = "crate::layout::field_list::option::deserialize")]
    pub fields: Option<Vec<Field>>,
    /// New links.
    #[serde(default)]
    pub links: Option<Vec<Link>>,
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Waiting to be posted (or retrying).
    Queued,
    /// In Slack: see `ts`.
    Posted,
    /// Kept by the dev sink (`SLACK_TRANSPORT=dev`) and never sent to Slack; its `ts` is
    /// a `dev.` stand-in. Updates and thread replies go to the dev sink too.
    Captured,
    /// Slack refused it for good: see `error`.
    Failed,
}

impl MessageStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Posted => "posted",
            MessageStatus::Captured => "captured",
            MessageStatus::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            MessageStatus::Queued,
            MessageStatus::Posted,
            MessageStatus::Captured,
            MessageStatus::Failed,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlackMessage {
    /// Message id.
    pub id: String,
    /// Where it goes, as requested.
    pub channel: String,
    /// Its level.
    pub level: Level,
    /// Its title.
    pub title: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// The channel id Slack answered with, once posted (the requested one when captured).
    pub slack_channel: Option<String>,
    /// The Slack timestamp (message id in Slack), once posted; `dev.` and digits when
    /// captured.
    pub ts: Option<String>,
    /// The thread it replies in.
    pub thread_ts: Option<String>,
    /// The last error (Slack's code for a permanent one).
    pub error: Option<String>,
    /// Accepted.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Posted (or captured).
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub posted_at: Option<DateTime<Utc>>,
    /// The message as requested (after changes).
    pub request: PostMessage,
}

/// The answer to a post or a change: accepted for delivery.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    /// Message id.
    pub id: String,
    /// Where it stands.
    pub status: MessageStatus,
}

/// Filters for listing messages.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct MessageFilter {
    /// Only this channel (as requested).
    pub channel: Option<String>,
    /// Only this status.
    pub status: Option<MessageStatus>,
    /// Only this level.
    pub level: Option<Level>,
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor` (which keeps its page's order).
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    pub order: Option<shared_db::paging::Order>,
}

/// One page of messages, newest first unless `order=asc`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagePage {
    /// Messages, newest first unless `order=asc`.
    pub items: Vec<SlackMessage>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What the service refuses or fails with.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A field is unacceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No such message.
    #[error("no Slack message has that id")]
    NotFound,
    /// The request conflicts with the message's state or an earlier request.
    #[error("{message}")]
    Conflict {
        /// `idempotency_conflict` or `invalid_state`.
        code: &'static str,
        /// In words.
        message: String,
    },
    /// No Slack transport is configured: nothing was stored.
    #[error(
        "Slack is not configured on this gateway: set SLACK_BOT_TOKEN (or SLACK_TRANSPORT=dev to capture messages without sending them)"
    )]
    NotConfigured,
    /// A page request was refused (`limit` or `cursor`).
    #[error(transparent)]
    Paging(#[from] PagingError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl shared_db::LockConflict for NotifyError {
    fn is_lock_conflict(&self) -> bool {
        matches!(self, NotifyError::Db(e) if e.is_lock_conflict())
    }
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> NotifyError {
    NotifyError::Invalid {
        field,
        message: message.into(),
    }
}

pub(crate) fn conflict_key() -> NotifyError {
    NotifyError::Conflict {
        code: "idempotency_conflict",
        message: "this Idempotency-Key was used with a different request".into(),
    }
}

/// A Slack `ts`: seconds, a dot, microseconds.
pub(crate) fn is_slack_ts(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.len() <= 12
            && b.len() <= 8
            && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_digit())
    })
}

pub(crate) fn check_channel(c: &str) -> Result<String, NotifyError> {
    let c = c.trim();
    let name = c.strip_prefix('#').unwrap_or(c);
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|ch| ch.is_alphanumeric() || matches!(ch, '-' | '_' | '.'));
    if !ok {
        return Err(invalid(
            "channel",
            "a channel id (C0123ABCD) or name (#alerts): letters, digits, - _ .",
        ));
    }
    Ok(c.to_owned())
}

/// Checks a message; returns its parsed mention.
pub(crate) fn check(req: &PostMessage) -> Result<Option<Mention>, NotifyError> {
    let title = req.title.trim();
    if title.is_empty() || title.chars().count() > 250 {
        return Err(invalid("title", "must be 1 to 250 characters"));
    }
    if req.text.as_ref().is_some_and(|t| t.chars().count() > 40_000) {
        return Err(invalid(
            "text",
            "at most 40,000 characters (Slack shows the first 3,000)",
        ));
    }
    if req.fields.len() > layout::MAX_FIELDS {
        return Err(invalid("fields", format!("at most {}", layout::MAX_FIELDS)));
    }
    if req
        .fields
        .iter()
        .any(|f| f.title.trim().is_empty() || f.title.chars().count() > 200)
    {
        return Err(invalid("fields", "each title must be 1 to 200 characters"));
    }
    if req.links.len() > layout::MAX_LINKS {
        return Err(invalid("links", format!("at most {}", layout::MAX_LINKS)));
    }
    for l in &req.links {
        let ok = url::Url::parse(&l.url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) && l.url.len() <= 3000;
        if !ok || l.text.trim().is_empty() {
            return Err(invalid(
                "links",
                format!("`{}`: each link needs text and an http(s) URL", l.url),
            ));
        }
    }
    for (field, v, max) in [("source", &req.source, 100), ("environment", &req.environment, 50)] {
        if v.as_ref().is_some_and(|s| s.chars().count() > max) {
            return Err(invalid(field, format!("at most {max} characters")));
        }
    }
    let mention = req
        .mention
        .as_deref()
        .map(Mention::parse)
        .transpose()
        .map_err(|m| invalid("mention", m))?;
    if mention.is_some() && req.level != layout::Level::Critical {
        return Err(invalid("mention", "only critical messages mention people"));
    }
    Ok(mention)
}
