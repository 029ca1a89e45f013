//! Slack messages as the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::layout::{Field, Level, Link};

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
    /// Page size (1 to 200, default 50).
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
