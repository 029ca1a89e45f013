//! Rules and webhooks as the API shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Post to Slack when a rule fires. `title` and `text` are templates over the event
/// (`{{ event.type }}`, `{{ data.owner_email }}`...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    /// The channel (the configured default when absent).
    #[serde(default)]
    pub channel: Option<String>,
    /// `debug`, `info`, `success`, `warning`, `error` or `critical`.
    pub level: slack_notify::layout::Level,
    /// The header template.
    pub title: String,
    /// The body template.
    #[serde(default)]
    pub text: Option<String>,
}

/// Send a stored email template when a rule fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EmailAction {
    /// The recipient: an address or a template (`{{ data.owner_email }}`).
    pub to: String,
    /// The email template's name; it is rendered with `event` and `data`.
    pub template: String,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Actions {
    /// Post to Slack.
    #[serde(default)]
    pub slack: Option<SlackAction>,
    /// Send an email.
    #[serde(default)]
    pub email: Option<EmailAction>,
}

/// A new rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// What it is for.
    pub name: String,
    /// The event type (`license.issued`) or a family (`license.*`).
    pub event_type: String,
    /// Equality conditions on the event's data (dotted paths: `product`, `license.product`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub filter: BTreeMap<String, serde_json::Value>,
    /// What to do.
    pub actions: Actions,
    /// Off rules keep their definition and do nothing (default on).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Changes to a rule; given fields replace the old ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    /// New name.
    pub name: Option<String>,
    /// New event type.
    pub event_type: Option<String>,
    /// New filter.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<BTreeMap<String, serde_json::Value>>,
    /// New actions.
    pub actions: Option<Actions>,
    /// On or off.
    pub enabled: Option<bool>,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rule {
    /// Rule id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The event type or family it listens to.
    pub event_type: String,
    /// Equality conditions on the event's data.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub filter: BTreeMap<String, serde_json::Value>,
    /// What it does.
    pub actions: Actions,
    /// On or off.
    pub enabled: bool,
    /// Created.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last changed.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// A new webhook.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are POSTed (https, or http); only global unicast addresses unless
    /// internal targets are allowed.
    pub url: String,
    /// Event types or families (`license.*`, `*` for all).
    pub event_types: Vec<String>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// Changes to a webhook.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// New URL.
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// On or off.
    pub enabled: Option<bool>,
}

/// A stored webhook (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// Webhook id.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// Event types or families.
    pub event_types: Vec<String>,
    /// What it is for.
    pub description: Option<String>,
    /// On or off (turned off when the receiver answers 410 Gone).
    pub enabled: bool,
    /// Created.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last changed.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// A webhook as created: with its signing secret, shown only this once.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` and base64: the key of the `Webhook-Signature` HMAC.
    pub secret: String,
}

impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("webhook", &self.webhook)
            .field("secret", &"***")
            .finish()
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    /// Attempt id.
    pub id: String,
    /// The event sent.
    pub event_id: String,
    /// 1 for the first try.
    pub attempt: i32,
    /// The receiver's status, if it answered.
    pub status_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
    /// When.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub delivered_at: DateTime<Utc>,
}

/// Lists of rules, webhooks or deliveries.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Items<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A page request for rules, webhooks or deliveries (newest first).
pub use shared_db::paging::PageQuery;

mod check;
mod error;

pub use check::type_matches;
pub(crate) use check::{check_rule, check_types};
pub use error::BridgeError;
pub(crate) use error::{corrupt, invalid};
