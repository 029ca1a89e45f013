//! Checking a message, rendering its template and building its MIME, before it is stored.

use std::collections::HashSet;

use shared_db::DbConn;

use super::MailService;
use crate::address::Mailbox;
use crate::mime::{self, Compose};
use crate::model::*;
use crate::store::{self, Delivery, Row, Summary};
use crate::template::{self, Parts};

/// How long a request waits for a rendering slot before answering busy.
const RENDER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A message checked and built, ready to store.
pub(super) struct Prepared {
    pub(super) row: Row,
    pub(super) deliveries: Vec<Delivery>,
}

impl MailService {
    /// Validates a request, renders its template and builds its MIME. `at` prefixes
    /// field names (`[2]` in a batch).
    pub(super) async fn prepare(
        &self,
        conn: &mut DbConn,
        req: SendEmail,
        batch_id: Option<&str>,
        at: &str,
    ) -> Result<Prepared, MailError> {
        let field = |f: &str| format!("{at}{}{f}", if at.is_empty() { "" } else { "." });
        // Every field is checked before answering, so one 422 names all that is wrong.
        let mut wrong: Vec<MailError> = Vec::new();
        let from = keep(
            &mut wrong,
            match req.from.as_deref() {
                Some(f) => Mailbox::parse(f).map_err(|e| invalid(field("from"), e)),
                None => self
                    .default_from
                    .clone()
                    .ok_or_else(|| invalid(field("from"), "give a sender (no SES_SENDER_EMAIL is configured)")),
            },
        );
        let mut list = |name: &str, items: &[String]| -> Vec<Mailbox> {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    keep(
                        &mut wrong,
                        Mailbox::parse(a).map_err(|e| invalid(field(&format!("{name}[{i}]")), e)),
                    )
                })
                .collect()
        };
        let to = list("to", &req.to);
        let cc = list("cc", &req.cc);
        let bcc = list("bcc", &req.bcc);
        let reply_to = list("reply_to", &req.reply_to);
        if reply_to.len() > 10 {
            wrong.push(invalid(field("reply_to"), "at most 10 addresses"));
        }
        let mut seen = HashSet::new();
        let destinations: Vec<String> = to
            .iter()
            .chain(&cc)
            .chain(&bcc)
            .map(|m| m.email.clone())
            .filter(|e| seen.insert(e.to_ascii_lowercase()))
            .collect();
        let addresses_given = req.to.len() + req.cc.len() + req.bcc.len();
        if addresses_given == 0 {
            wrong.push(invalid(field("to"), "give at least one recipient in to, cc or bcc"));
        }
        if destinations.len() > MAX_RECIPIENTS {
            wrong.push(invalid(
                field("to"),
                format!(
                    "{} recipients; at most {MAX_RECIPIENTS} (to, cc and bcc together)",
                    destinations.len()
                ),
            ));
        }
        match &req.template {
            Some(t) => {
                if req.text.is_some() || req.html.is_some() {
                    wrong.push(invalid(field("template"), "give a template or text/html, not both"));
                }
                if !t.variables.is_object() {
                    wrong.push(invalid(field("template.variables"), "must be a JSON object"));
                }
            }
            None => {
                if req.text.is_none() && req.html.is_none() {
                    wrong.push(invalid(field("text"), "give text, html or a template"));
                }
                if let Err(e) = check_subject(req.subject.as_deref().unwrap_or_default()) {
                    wrong.push(invalid(field("subject"), e));
                }
            }
        }
        let headers = keep(
            &mut wrong,
            check_headers(&req.headers).map_err(|e| invalid(field("headers"), e)),
        );
        if let Err(e) = check_tags(&req.tags) {
            wrong.push(invalid(field("tags"), e));
        }
        let files = keep(&mut wrong, decode_files(&req.attachments, at));
        if req.attachments.iter().any(|f| f.content_id.is_some()) && req.html.is_none() && req.template.is_none() {
            wrong.push(invalid(field("attachments"), INLINE_NEEDS_HTML));
        }
        let (from, headers, files) = match (from, headers, files) {
            (Some(from), Some(headers), Some(files)) if wrong.is_empty() => (from, headers, files),
            _ => return Err(MailError::all(wrong)),
        };
        let (parts, template_name) = match &req.template {
            Some(t) => {
                let stored = store::find_template(conn, &t.name)
                    .await?
                    .ok_or_else(|| invalid(field("template.name"), format!("no template is named `{}`", t.name)))?;
                // CPU work, bounded by the template module: off the async workers.
                let (source, variables, limit) = (stored.parts(), t.variables.clone(), self.settings.max_message_bytes);
                let mut parts = template::Renders::shared()
                    .render(source, variables, limit, Some(RENDER_WAIT))
                    .await?;
                if let Some(s) = &req.subject {
                    parts.subject = s.clone();
                }
                check_subject(&parts.subject).map_err(|e| invalid(field("subject"), e))?;
                if files.iter().any(|f| f.content_id.is_some()) && parts.html.is_none() {
                    return Err(invalid(field("attachments"), INLINE_NEEDS_HTML));
                }
                (parts, Some(stored.name))
            }
            None => (
                Parts {
                    subject: req.subject.clone().unwrap_or_default(),
                    html: req.html.clone(),
                    text: req.text.clone(),
                },
                None,
            ),
        };
        let subject = parts.subject.trim();
        let id = shared_db::new_id();
        let now = shared_db::now();
        let message_id = format!("{id}@{}", from.domain());
        let raw = mime::build(&Compose {
            from: &from,
            to: &to,
            cc: &cc,
            reply_to: &reply_to,
            subject,
            text: parts.text.as_deref(),
            html: parts.html.as_deref(),
            files: &files,
            headers: &headers,
            message_id: &message_id,
            date: now.and_utc().timestamp(),
        })
        .map_err(corrupt)?;
        if raw.len() > self.settings.max_message_bytes {
            return Err(MailError::TooLarge {
                size: raw.len(),
                limit: self.settings.max_message_bytes,
            });
        }
        let summary = Summary {
            to: to.iter().map(Mailbox::to_string).collect(),
            cc: cc.iter().map(Mailbox::to_string).collect(),
            bcc: bcc.iter().map(Mailbox::to_string).collect(),
            reply_to: reply_to.iter().map(Mailbox::to_string).collect(),
            tags: req.tags.clone(),
            attachments: files
                .iter()
                .map(|f| AttachmentInfo {
                    filename: f.filename.clone(),
                    content_type: f.content_type.clone(),
                    size: f.content.len() as u64,
                    content_id: f.content_id.clone(),
                })
                .collect(),
        };
        let deliveries = destinations
            .chunks(MAX_RECIPIENTS_PER_SEND)
            .enumerate()
            .map(|(seq, chunk)| Delivery {
                id: shared_db::new_id(),
                email_id: id.clone(),
                seq: seq as i32,
                recipients: serde_json::to_string(chunk).unwrap_or_default(),
                suppressed: None,
                status: "queued".into(),
                provider_id: None,
                error: None,
                updated_at: now,
            })
            .collect();
        Ok(Prepared {
            row: Row {
                id,
                batch_id: batch_id.map(str::to_owned),
                from_addr: from.to_string(),
                subject: subject.to_owned(),
                status: EmailStatus::Queued.as_str().into(),
                template: template_name,
                summary: serde_json::to_string(&summary).map_err(corrupt)?,
                size: raw.len() as i64,
                raw_mime: raw,
                error: None,
                created_by: None,
                created_at: now,
                updated_at: now,
                sent_at: None,
            },
            deliveries,
        })
    }
}
