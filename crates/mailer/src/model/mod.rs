//! Emails, templates and suppressions as the API shows them, the checks of what a caller
//! sends ([`check`]'s limits) and the service's errors ([`MailError`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

mod check;
mod error;

pub(crate) use check::{
    INLINE_NEEDS_HTML, check_headers, check_subject, check_tags, check_template_name, decode_files, keep,
    suppression_key,
};
pub use check::{MAX_BATCH, MAX_RECIPIENTS, MAX_RECIPIENTS_PER_SEND};
pub use error::MailError;
pub(crate) use error::{conflict_key, corrupt, invalid};

/// One address or a list of them (`null`: none). A wrong type is refused as "expected an
/// address or a list of addresses", not as a failed match of some internal enum.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::{SeqAccess, Visitor};

    struct Addresses;

    impl<'de> Visitor<'de> for Addresses {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an address or a list of addresses")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }

        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(vec![v])
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(address) = seq.next_element::<String>()? {
                all.push(address);
            }
            Ok(all)
        }
    }

    d.deserialize_any(Addresses)
}

/// A message to send: either `subject` with `text` and/or `html`, or a `template`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    /// `Name <sender@example.com>`; the configured `SES_SENDER_EMAIL` when absent.
    #[serde(default)]
    pub from: Option<String>,
    /// Recipients (an address or a list).
    #[serde(default, deserialize_with = "one_or_many")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub to: Vec<String>,
    /// Copies.
    #[serde(default, deserialize_with = "one_or_many")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub cc: Vec<String>,
    /// Blind copies (never in the headers).
    #[serde(default, deserialize_with = "one_or_many")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub bcc: Vec<String>,
    /// Where replies go.
    #[serde(default, deserialize_with = "one_or_many")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub reply_to: Vec<String>,
    /// The subject (or the template's).
    #[serde(default)]
    pub subject: Option<String>,
    /// The plain-text part.
    #[serde(default)]
    pub text: Option<String>,
    /// The HTML part.
    #[serde(default)]
    pub html: Option<String>,
    /// A stored template and its variables, instead of subject/text/html.
    #[serde(default)]
    pub template: Option<TemplateRef>,
    /// Files; give `content_id` to show one inline as `<img src="cid:...">`.
    #[serde(default)]
    pub attachments: Vec<AttachmentIn>,
    /// Labels for finding the message later (name to value).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Extra headers (`X-...`, `List-Unsubscribe`...); address and MIME headers are refused.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A template to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    /// The template's name.
    pub name: String,
    /// Its variables (a JSON object).
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub variables: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A file to attach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttachmentIn {
    /// Its name.
    pub filename: String,
    /// Its media type (guessed from the name when absent).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Its bytes, base64.
    pub content_base64: String,
    /// Show inline: the HTML refers to it as `cid:<content_id>`.
    #[serde(default)]
    pub content_id: Option<String>,
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EmailStatus {
    /// Waiting in the outbox (or retrying).
    Queued,
    /// Being handed to SES.
    Sending,
    /// SES accepted it (see `provider_ids`).
    Sent,
    /// Kept by the dev mailbox (`MAIL_TRANSPORT=dev`) and sent to no one; read it back
    /// from `GET /api/v1/emails/{id}/raw`.
    Captured,
    /// SES reported delivery to the recipients' servers.
    Delivered,
    /// Refused for good (see `error`).
    Failed,
    /// A recipient's server bounced it.
    Bounced,
    /// A recipient marked it as spam.
    Complained,
    /// Every recipient is on the suppression list; nothing was sent.
    Suppressed,
}

impl EmailStatus {
    /// Every status.
    pub const ALL: [EmailStatus; 9] = [
        EmailStatus::Queued,
        EmailStatus::Sending,
        EmailStatus::Sent,
        EmailStatus::Captured,
        EmailStatus::Delivered,
        EmailStatus::Failed,
        EmailStatus::Bounced,
        EmailStatus::Complained,
        EmailStatus::Suppressed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailStatus::Queued => "queued",
            EmailStatus::Sending => "sending",
            EmailStatus::Sent => "sent",
            EmailStatus::Captured => "captured",
            EmailStatus::Delivered => "delivered",
            EmailStatus::Failed => "failed",
            EmailStatus::Bounced => "bounced",
            EmailStatus::Complained => "complained",
            EmailStatus::Suppressed => "suppressed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A file carried by a message (without its bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentInfo {
    /// Its name.
    pub filename: String,
    /// Its media type.
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// For inline images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

/// One step in a message's life.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusChange {
    /// The event (`email.queued`, `email.sent`, `email.captured`, `email.bounced`...).
    #[serde(rename = "type")]
    pub kind: String,
    /// When.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub at: DateTime<Utc>,
    /// Details (recipients, SES message id, reason).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Email {
    /// Message id.
    pub id: String,
    /// The batch it came in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Where it stands.
    pub status: EmailStatus,
    /// `From`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Copies.
    pub cc: Vec<String>,
    /// Blind copies.
    pub bcc: Vec<String>,
    /// Reply addresses.
    pub reply_to: Vec<String>,
    /// The subject as sent.
    pub subject: String,
    /// The template it was rendered from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Labels.
    pub tags: BTreeMap<String, String>,
    /// Files.
    pub attachments: Vec<AttachmentInfo>,
    /// Recipients dropped because they are on the suppression list.
    pub suppressed: Vec<String>,
    /// SES message ids (one per group of up to 50 recipients).
    pub provider_ids: Vec<String>,
    /// The last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// MIME size in bytes.
    pub size: u64,
    /// Accepted.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Handed to SES (absent for a message the dev mailbox captured).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub sent_at: Option<DateTime<Utc>>,
    /// Every step, oldest first (on `GET /emails/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<StatusChange>>,
}

/// The answer to a send: accepted for delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    /// Message id.
    pub id: String,
    /// `queued`.
    pub status: EmailStatus,
}

/// The answer to a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchAccepted {
    /// The batch.
    pub batch_id: String,
    /// One per message, in request order.
    pub items: Vec<Accepted>,
}

/// Filters for listing messages.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct EmailFilter {
    /// Only this status.
    pub status: Option<EmailStatus>,
    /// Only from this address.
    pub from: Option<String>,
    /// Only rendered from this template.
    pub template: Option<String>,
    /// Only this batch.
    pub batch_id: Option<String>,
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
pub struct EmailPage {
    /// Messages, newest first unless `order=asc`.
    pub items: Vec<Email>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A template's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// The subject, a template itself (`Welcome, {{ name }}`).
    pub subject: String,
    /// The HTML part (variables HTML-escaped).
    #[serde(default)]
    pub html: Option<String>,
    /// The plain-text part.
    #[serde(default)]
    pub text: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A stored template.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailTemplate {
    /// Its name.
    pub name: String,
    /// The subject template.
    pub subject: String,
    /// The HTML template.
    pub html: Option<String>,
    /// The text template.
    pub text: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// The top-level variables it uses.
    pub variables: Vec<String>,
    /// 1 on creation, +1 per change.
    pub version: i64,
    /// Created.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last changed.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// Templates, by name.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplatePage {
    /// Templates.
    pub items: Vec<EmailTemplate>,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SuppressionReason {
    /// A permanent bounce.
    Bounce,
    /// A spam complaint.
    Complaint,
    /// Added by hand.
    Manual,
}

impl SuppressionReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Bounce => "bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Manual => "manual",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Bounce, Self::Complaint, Self::Manual]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// An address nothing is sent to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Suppression {
    /// The address (lower case).
    pub address: String,
    /// Why.
    pub reason: SuppressionReason,
    /// SES's diagnostic, or a note.
    pub detail: Option<String>,
    /// The message that bounced or was complained about.
    pub email_id: Option<String>,
    /// Since.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
}

/// Adds an address by hand.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddSuppression {
    /// The address.
    pub address: String,
    /// A note.
    #[serde(default)]
    pub detail: Option<String>,
}

/// Filters for the suppression list.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SuppressionFilter {
    /// Only this reason.
    pub reason: Option<SuppressionReason>,
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One page of suppressions, by address.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuppressionPage {
    /// Suppressions.
    pub items: Vec<Suppression>,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What the SNS endpoint did with a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnsOutcome {
    /// `confirmed`, `processed`, `duplicate` or `ignored`.
    pub result: String,
}
