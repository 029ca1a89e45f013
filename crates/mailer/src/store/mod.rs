//! The outbox's rows and every query on them: the only place that touches diesel.

mod deliveries;
pub(crate) mod messages;
mod suppressions;
mod templates;

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

pub(crate) use deliveries::*;
pub(crate) use messages::*;
pub(crate) use suppressions::*;
pub(crate) use templates::*;

use crate::model::*;
use crate::schema::{email_deliveries, email_messages, email_suppressions, email_templates};
use crate::template::{self, Parts};

impl From<diesel::result::Error> for MailError {
    fn from(e: diesel::result::Error) -> Self {
        MailError::Db(e.into())
    }
}

/// What is kept about a message besides its MIME.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) to: Vec<String>,
    pub(crate) cc: Vec<String>,
    pub(crate) bcc: Vec<String>,
    pub(crate) reply_to: Vec<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) attachments: Vec<AttachmentInfo>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_messages, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) batch_id: Option<String>,
    pub(crate) from_addr: String,
    pub(crate) subject: String,
    pub(crate) status: String,
    pub(crate) template: Option<String>,
    pub(crate) summary: String,
    pub(crate) raw_mime: Vec<u8>,
    pub(crate) size: i64,
    pub(crate) error: Option<String>,
    pub(crate) created_by: Option<String>,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
    pub(crate) sent_at: Option<NaiveDateTime>,
}

/// A message row without its MIME (for views and lists).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_messages, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct Head {
    pub(crate) id: String,
    pub(crate) batch_id: Option<String>,
    pub(crate) from_addr: String,
    pub(crate) subject: String,
    pub(crate) status: String,
    pub(crate) template: Option<String>,
    pub(crate) summary: String,
    pub(crate) size: i64,
    pub(crate) error: Option<String>,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
    pub(crate) sent_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_deliveries, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct Delivery {
    pub(crate) id: String,
    pub(crate) email_id: String,
    pub(crate) seq: i32,
    pub(crate) recipients: String,
    pub(crate) suppressed: Option<String>,
    pub(crate) status: String,
    pub(crate) provider_id: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) updated_at: NaiveDateTime,
}

impl Delivery {
    pub(crate) fn recipients(&self) -> Vec<String> {
        serde_json::from_str(&self.recipients).unwrap_or_default()
    }

    pub(crate) fn suppressed(&self) -> Vec<String> {
        self.suppressed
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = email_templates, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_null = true)]
pub(crate) struct TemplateRow {
    pub(crate) name: String,
    pub(crate) subject: String,
    pub(crate) html: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) version: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

impl TemplateRow {
    pub(crate) fn parts(&self) -> Parts {
        Parts {
            subject: self.subject.clone(),
            html: self.html.clone(),
            text: self.text.clone(),
        }
    }

    pub(crate) fn into_view(self) -> EmailTemplate {
        EmailTemplate {
            variables: template::variables(&self.parts()),
            name: self.name,
            subject: self.subject,
            html: self.html,
            text: self.text,
            description: self.description,
            version: self.version,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_suppressions, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct SuppressionRow {
    pub(crate) address: String,
    pub(crate) reason: String,
    pub(crate) detail: Option<String>,
    pub(crate) email_id: Option<String>,
    pub(crate) created_at: NaiveDateTime,
}

impl SuppressionRow {
    pub(crate) fn into_view(self) -> Suppression {
        Suppression {
            reason: SuppressionReason::parse(&self.reason).unwrap_or(SuppressionReason::Manual),
            address: self.address,
            detail: self.detail,
            email_id: self.email_id,
            created_at: self.created_at.and_utc(),
        }
    }
}

pub(crate) fn view(h: Head, deliveries: &[Delivery]) -> Result<Email, MailError> {
    let summary: Summary = serde_json::from_str(&h.summary).map_err(|e| corrupt(format!("email {}: {e}", h.id)))?;
    let mut ordered: Vec<&Delivery> = deliveries.iter().collect();
    ordered.sort_by_key(|d| d.seq);
    Ok(Email {
        status: EmailStatus::parse(&h.status).unwrap_or(EmailStatus::Failed),
        suppressed: ordered.iter().flat_map(|d| d.suppressed()).collect(),
        provider_ids: ordered.iter().filter_map(|d| d.provider_id.clone()).collect(),
        id: h.id,
        batch_id: h.batch_id,
        from: h.from_addr,
        to: summary.to,
        cc: summary.cc,
        bcc: summary.bcc,
        reply_to: summary.reply_to,
        subject: h.subject,
        template: h.template,
        tags: summary.tags,
        attachments: summary.attachments,
        error: h.error,
        size: h.size.max(0) as u64,
        created_at: h.created_at.and_utc(),
        updated_at: h.updated_at.and_utc(),
        sent_at: h.sent_at.map(|t| t.and_utc()),
        history: None,
    })
}
