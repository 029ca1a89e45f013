//! The outbox: messages checked, rendered and built into MIME when accepted, stored with
//! their delivery jobs in one transaction, sent through the job queue at the account's
//! pace, and followed up by SES's bounce, complaint and delivery notifications.

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota as Gcra};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared_db::idempotency::{self, Owner, Seen};
use shared_db::jobs::{self, Job, NewJob};
use shared_db::worker::{JobError, JobHandler};
use shared_db::{DbConn, DbError, DbPool, events, with_conn};
use tokio::sync::Notify;

use crate::address::Mailbox;
use crate::mime::{self, Compose, File};
use crate::model::*;
use crate::schema::{email_deliveries, email_messages, email_suppressions, email_templates};
use crate::sns::{SnsError, SnsVerifier};
use crate::template::{self, Parts, TemplateError};
use crate::transport::{MailMode, Mailer, SendError};

/// The queue of sends (one job per group of up to 50 recipients).
pub const SEND_QUEUE: &str = "email.send";
/// SES takes at most this many recipients per message.
pub const MAX_RECIPIENTS_PER_SEND: usize = 50;
/// Recipients (to + cc + bcc) one message may have; more than 50 are split.
pub const MAX_RECIPIENTS: usize = 500;
/// Messages in one batch.
pub const MAX_BATCH: usize = 100;
const IDEMPOTENCY_SCOPE: &str = "emails";
const BATCH_SCOPE: &str = "emails.batch";
const SNS_SCOPE: &str = "sns";
const ATTEMPTS: i32 = 25;

/// Extensions SES refuses to carry.
const BLOCKED_EXTENSIONS: &[&str] = &[
    "ade", "adp", "app", "asp", "bas", "bat", "cer", "chm", "cmd", "com", "cpl", "crt", "csh", "der", "exe", "fxp",
    "gadget", "hlp", "hta", "inf", "ins", "isp", "its", "js", "jse", "ksh", "lib", "lnk", "mad", "maf", "mag", "mam",
    "maq", "mar", "mas", "mat", "mau", "mav", "maw", "mda", "mdb", "mde", "mdt", "mdw", "mdz", "msc", "msh", "msh1",
    "msh2", "mshxml", "msh1xml", "msh2xml", "msi", "msp", "mst", "ops", "pcd", "pif", "plg", "prf", "prg", "reg",
    "scf", "scr", "sct", "shb", "shs", "sys", "ps1", "ps1xml", "ps2", "ps2xml", "psc1", "psc2", "tmp", "url", "vb",
    "vbe", "vbs", "vps", "vsmacros", "vss", "vst", "vsw", "vxd", "ws", "wsc", "wsf", "wsh", "xnk",
];

/// Headers a caller may not set (the message sets them, or SES does).
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "sender",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "return-path",
    "received",
    "dkim-signature",
];

/// What the service refuses or fails with.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A field is unacceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Several fields are unacceptable (each an [`MailError::Invalid`]).
    #[error("{} fields are invalid", .0.len())]
    InvalidFields(Vec<MailError>),
    /// A template does not parse or lacks a variable.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The built message is larger than allowed.
    #[error("the message is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No such thing.
    #[error("no {0} has that id or name")]
    NotFound(&'static str),
    /// The request conflicts with an earlier one.
    #[error("{message}")]
    Conflict {
        /// `idempotency_conflict`.
        code: &'static str,
        /// In words.
        message: String,
    },
    /// Raw MIME is served by the dev mailbox only.
    #[error("the raw message is available in the dev mailbox mode only (this gateway's mail transport is {0})")]
    RawUnavailable(&'static str),
    /// No mail transport is configured: nothing was stored.
    #[error(
        "email is not configured on this gateway: set SES_SENDER_EMAIL and AWS_SES_REGION (or MAIL_TRANSPORT=dev to capture messages without sending them)"
    )]
    NotConfigured,
    /// An SNS message was refused.
    #[error(transparent)]
    Sns(#[from] SnsError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl MailError {
    /// One error for all of `wrong`: itself when alone, otherwise [`MailError::InvalidFields`].
    fn all(mut wrong: Vec<MailError>) -> Self {
        if wrong.len() == 1 {
            wrong.remove(0)
        } else {
            MailError::InvalidFields(wrong)
        }
    }

    /// Each field at fault with what is wrong with it.
    pub fn fields(&self) -> Vec<(&str, &str)> {
        match self {
            MailError::Invalid { field, message } => vec![(field.as_str(), message.as_str())],
            MailError::InvalidFields(all) => all.iter().flat_map(MailError::fields).collect(),
            _ => Vec::new(),
        }
    }
}

impl From<diesel::result::Error> for MailError {
    fn from(e: diesel::result::Error) -> Self {
        MailError::Db(e.into())
    }
}

/// Why a message with inline files (`content_id`) but no html part is refused.
const INLINE_NEEDS_HTML: &str = "inline files (content_id) need an html part";

/// `r`'s value, or `None` with its error added to `wrong`.
fn keep<T>(wrong: &mut Vec<MailError>, r: Result<T, MailError>) -> Option<T> {
    r.map_err(|e| wrong.push(e)).ok()
}

/// A subject SES and mail clients accept: 1 to 998 characters, no line breaks.
fn check_subject(subject: &str) -> Result<(), &'static str> {
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > 998 {
        return Err("must be 1 to 998 characters");
    }
    if subject.chars().any(char::is_control) {
        return Err("may not contain line breaks or control characters");
    }
    Ok(())
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> MailError {
    MailError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// How long a request waits for a rendering slot before answering busy.
const RENDER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn corrupt(e: impl std::fmt::Display) -> MailError {
    MailError::Db(DbError::Corrupt(e.to_string()))
}

/// How the service behaves.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `SES_SENDER_EMAIL`: the sender when a message names none.
    pub default_from: Option<String>,
    /// The largest MIME message accepted (SES: 10 MB).
    pub max_message_bytes: usize,
    /// Recipients per second; read from SES's `GetSendQuota` when `None`.
    pub max_send_rate: Option<f64>,
    /// How often the SES quota is read again.
    pub quota_refresh: Duration,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            default_from: None,
            max_message_bytes: 10 * 1024 * 1024,
            max_send_rate: None,
            quota_refresh: Duration::from_secs(600),
        }
    }
}

/// What is kept about a message besides its MIME.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Summary {
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    reply_to: Vec<String>,
    tags: BTreeMap<String, String>,
    attachments: Vec<AttachmentInfo>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_messages, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
struct Row {
    id: String,
    batch_id: Option<String>,
    from_addr: String,
    subject: String,
    status: String,
    template: Option<String>,
    summary: String,
    raw_mime: Vec<u8>,
    size: i64,
    error: Option<String>,
    created_by: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    sent_at: Option<NaiveDateTime>,
}

/// A message row without its MIME (for views and lists).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_messages, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
struct Head {
    id: String,
    batch_id: Option<String>,
    from_addr: String,
    subject: String,
    status: String,
    template: Option<String>,
    summary: String,
    size: i64,
    error: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    sent_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_deliveries, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
struct Delivery {
    id: String,
    email_id: String,
    seq: i32,
    recipients: String,
    suppressed: Option<String>,
    status: String,
    provider_id: Option<String>,
    error: Option<String>,
    updated_at: NaiveDateTime,
}

impl Delivery {
    fn recipients(&self) -> Vec<String> {
        serde_json::from_str(&self.recipients).unwrap_or_default()
    }

    fn suppressed(&self) -> Vec<String> {
        self.suppressed
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = email_templates, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_null = true)]
struct TemplateRow {
    name: String,
    subject: String,
    html: Option<String>,
    text: Option<String>,
    description: Option<String>,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TemplateRow {
    fn parts(&self) -> Parts {
        Parts {
            subject: self.subject.clone(),
            html: self.html.clone(),
            text: self.text.clone(),
        }
    }

    fn into_view(self) -> EmailTemplate {
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
struct SuppressionRow {
    address: String,
    reason: String,
    detail: Option<String>,
    email_id: Option<String>,
    created_at: NaiveDateTime,
}

impl SuppressionRow {
    fn into_view(self) -> Suppression {
        Suppression {
            reason: SuppressionReason::parse(&self.reason).unwrap_or(SuppressionReason::Manual),
            address: self.address,
            detail: self.detail,
            email_id: self.email_id,
            created_at: self.created_at.and_utc(),
        }
    }
}

/// What `accept` did.
enum Stored {
    /// Stored: the message or batch id, and the message ids in request order.
    New { resource: String, ids: Vec<String> },
    /// A repeat of an earlier request: its message or batch id.
    Replay(String),
}

/// A message checked and built, ready to store.
struct Prepared {
    row: Row,
    deliveries: Vec<Delivery>,
}

/// The send pace: a recipient-based token bucket.
struct Pace {
    rate: Option<f64>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    read_at: Option<Instant>,
}

fn limiter(rate: f64) -> Option<Arc<DefaultDirectRateLimiter>> {
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new((rate.ceil() as u32).max(MAX_RECIPIENTS_PER_SEND as u32)).unwrap_or(NonZeroU32::MIN);
    Gcra::with_period(period).map(|q| Arc::new(DefaultDirectRateLimiter::direct(q.allow_burst(burst))))
}

/// Email: the outbox, templates, suppressions and SES notifications.
pub struct MailService {
    pool: DbPool,
    /// None: not configured (sends are refused).
    mailer: Option<Arc<dyn Mailer>>,
    sns: Option<SnsVerifier>,
    settings: MailSettings,
    default_from: Option<Mailbox>,
    pace: RwLock<Pace>,
    clock: DefaultClock,
    wake: Arc<Notify>,
}

impl MailService {
    /// Builds the service. `mailer` is the transport (none: email is not configured, and
    /// every send is refused with [`MailError::NotConfigured`], storing nothing); `wake`
    /// is notified after each enqueue (give it to the worker); `sns` verifies SES
    /// notifications (none: the SNS endpoint refuses everything).
    pub fn new(
        pool: DbPool,
        mailer: Option<Arc<dyn Mailer>>,
        sns: Option<SnsVerifier>,
        settings: MailSettings,
        wake: Arc<Notify>,
    ) -> Result<Self, MailError> {
        let default_from = settings
            .default_from
            .as_deref()
            .map(Mailbox::parse)
            .transpose()
            .map_err(|e| invalid("SES_SENDER_EMAIL", e))?;
        let fixed = settings.max_send_rate;
        Ok(Self {
            pool,
            mailer,
            sns,
            default_from,
            pace: RwLock::new(Pace {
                rate: fixed,
                limiter: fixed.and_then(limiter),
                read_at: fixed.map(|_| Instant::now()),
            }),
            settings,
            clock: DefaultClock::default(),
            wake,
        })
    }

    /// How email leaves: SES, the dev mailbox, or not at all.
    pub fn mode(&self) -> MailMode {
        match &self.mailer {
            None => MailMode::NotConfigured,
            Some(m) if m.captures() => MailMode::Dev,
            Some(_) => MailMode::Ses,
        }
    }

    /// `ses`, `dev` or `not_configured`.
    pub fn transport(&self) -> &'static str {
        self.mode().as_str()
    }

    /// The sender of messages that name none (`SES_SENDER_EMAIL`).
    pub fn default_sender(&self) -> Option<String> {
        self.default_from.as_ref().map(Mailbox::to_string)
    }

    /// The transport, or [`MailError::NotConfigured`].
    fn transport_or_refuse(&self) -> Result<&Arc<dyn Mailer>, MailError> {
        self.mailer.as_ref().ok_or(MailError::NotConfigured)
    }

    /// The recipients-per-second pace in force (none: unpaced).
    pub fn send_rate(&self) -> Option<f64> {
        self.pace.read().ok().and_then(|p| p.rate)
    }

    // ----- accepting -----

    /// Checks, renders, builds and queues one message. With an idempotency key, a
    /// repeat of the same request returns the first message (`true` = replay).
    pub async fn submit(
        &self,
        req: SendEmail,
        idempotency: Option<idempotency::Key<'_>>,
        actor: &str,
    ) -> Result<(Accepted, bool), MailError> {
        self.transport_or_refuse()?;
        match self.accept(vec![req], false, idempotency, actor).await? {
            Stored::Replay(id) => {
                let mut conn = self.pool.get().await?;
                Ok((self.accepted(&mut conn, &id).await?, true))
            }
            Stored::New { ids, .. } => Ok((
                Accepted {
                    id: ids.into_iter().next().unwrap_or_default(),
                    status: EmailStatus::Queued,
                },
                false,
            )),
        }
    }

    /// Checks, renders and queues up to 100 messages, all or none: a problem in any
    /// names its index (`[3].to`).
    pub async fn submit_batch(
        &self,
        reqs: Vec<SendEmail>,
        idempotency: Option<idempotency::Key<'_>>,
        actor: &str,
    ) -> Result<(BatchAccepted, bool), MailError> {
        self.transport_or_refuse()?;
        if reqs.is_empty() || reqs.len() > MAX_BATCH {
            return Err(invalid("", format!("a batch holds 1 to {MAX_BATCH} messages")));
        }
        match self.accept(reqs, true, idempotency, actor).await? {
            Stored::Replay(batch) => {
                let mut conn = self.pool.get().await?;
                Ok((self.batch(&mut conn, &batch).await?, true))
            }
            Stored::New { resource, ids } => Ok((
                BatchAccepted {
                    batch_id: resource,
                    items: ids
                        .into_iter()
                        .map(|id| Accepted {
                            id,
                            status: EmailStatus::Queued,
                        })
                        .collect(),
                },
                false,
            )),
        }
    }

    /// Prepares `reqs` (one message, or a batch) and stores them with their jobs in one
    /// transaction, remembering the idempotency key for the message or batch id. A
    /// request that loses a race for the same key is answered as a repeat.
    async fn accept(
        &self,
        reqs: Vec<SendEmail>,
        batch: bool,
        idempotency: Option<idempotency::Key<'_>>,
        actor: &str,
    ) -> Result<Stored, MailError> {
        let scope = if batch { BATCH_SCOPE } else { IDEMPOTENCY_SCOPE };
        let mut conn = self.pool.get().await?;
        match seen(&mut conn, scope, idempotency).await? {
            Seen::Replay(id) => return Ok(Stored::Replay(id)),
            Seen::Conflict => return Err(conflict_key()),
            Seen::New => {}
        }
        let batch_id = batch.then(shared_db::new_id);
        let mut prepared = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.into_iter().enumerate() {
            let at = if batch { format!("[{i}]") } else { String::new() };
            prepared.push(self.prepare(&mut conn, req, batch_id.as_deref(), &at).await?);
        }
        let ids: Vec<String> = prepared.iter().map(|p| p.row.id.clone()).collect();
        let resource = batch_id.unwrap_or_else(|| <[String]>::first(&ids).cloned().unwrap_or_default());
        let key = idempotency.map(|k| (k.owner.clone(), k.key.to_owned(), k.hash.to_owned()));
        let actor = actor.to_owned();
        let remembered = resource.clone();
        let saved = conn
            .transaction::<_, MailError, _>(async move |c| {
                for p in prepared {
                    store(c, p, &actor).await?;
                }
                if let Some((owner, key, hash)) = &key {
                    let key = idempotency::Key { owner, key, hash };
                    idempotency::remember(c, scope, key, &remembered).await?;
                }
                Ok(())
            })
            .await;
        match saved {
            Ok(()) => {
                self.wake.notify_one();
                Ok(Stored::New { resource, ids })
            }
            Err(MailError::Db(e)) if e.is_unique_violation() && idempotency.is_some() => {
                match seen(&mut conn, scope, idempotency).await? {
                    Seen::Replay(id) => Ok(Stored::Replay(id)),
                    _ => Err(conflict_key()),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn accepted(&self, conn: &mut DbConn, id: &str) -> Result<Accepted, MailError> {
        let head = find_head(conn, id).await?.ok_or(MailError::NotFound("email"))?;
        Ok(Accepted {
            status: EmailStatus::parse(&head.status).unwrap_or(EmailStatus::Queued),
            id: head.id,
        })
    }

    async fn batch(&self, conn: &mut DbConn, batch: &str) -> Result<BatchAccepted, MailError> {
        let rows: Vec<(String, String)> = with_conn!(conn, |c| email_messages::table
            .filter(email_messages::batch_id.eq(batch))
            .order(email_messages::id.asc())
            .select((email_messages::id, email_messages::status))
            .load(c)
            .await)?;
        Ok(BatchAccepted {
            batch_id: batch.to_owned(),
            items: rows
                .into_iter()
                .map(|(id, s)| Accepted {
                    id,
                    status: EmailStatus::parse(&s).unwrap_or(EmailStatus::Queued),
                })
                .collect(),
        })
    }

    /// Validates a request, renders its template and builds its MIME. `at` prefixes
    /// field names (`[2]` in a batch).
    async fn prepare(
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
                let stored = find_template(conn, &t.name)
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

    // ----- reading -----

    /// One message with its history.
    pub async fn get(&self, id: &str) -> Result<Email, MailError> {
        let mut conn = self.pool.get().await?;
        let head = find_head(&mut conn, id).await?.ok_or(MailError::NotFound("email"))?;
        let deliveries = deliveries_of(&mut conn, std::slice::from_ref(&head.id)).await?;
        let history = events::for_subject(&mut conn, &format!("email:{id}"))
            .await?
            .into_iter()
            .map(|e| StatusChange {
                kind: e.event_type,
                at: e.occurred_at.and_utc(),
                data: serde_json::from_str(&e.data).unwrap_or(Value::Null),
            })
            .collect();
        let mut email = view(head, &deliveries)?;
        email.history = Some(history);
        Ok(email)
    }

    /// The exact MIME of a message (dev mailbox only).
    pub async fn raw(&self, id: &str) -> Result<Vec<u8>, MailError> {
        let mode = self.mode();
        if mode != MailMode::Dev {
            return Err(MailError::RawUnavailable(mode.as_str()));
        }
        let mut conn = self.pool.get().await?;
        let raw: Option<Vec<u8>> = with_conn!(&mut *conn, |c| email_messages::table
            .find(id)
            .select(email_messages::raw_mime)
            .first(c)
            .await
            .optional())?;
        raw.ok_or(MailError::NotFound("email"))
    }

    /// Messages matching `filter`, newest first unless `order=asc`.
    pub async fn list(&self, filter: &EmailFilter) -> Result<EmailPage, MailError> {
        let limit = page_limit(filter.limit)?;
        let (order, after) = shared_db::paging::continue_from(filter.cursor.as_deref(), filter.order)
            .map_err(|e| invalid("cursor", e.to_string()))?;
        let from = filter
            .from
            .as_deref()
            .map(|f| Mailbox::parse(f).map_err(|e| invalid("from", e)))
            .transpose()?;
        let mut conn = self.pool.get().await?;
        let rows: Vec<Head> = with_conn!(&mut *conn, |c| {
            let mut q = email_messages::table.select(Head::as_select()).into_boxed();
            if let Some(s) = filter.status {
                q = q.filter(email_messages::status.eq(s.as_str()));
            }
            if let Some(f) = &from {
                q = q.filter(email_messages::from_addr.eq(f.to_string()));
            }
            if let Some(t) = &filter.template {
                q = q.filter(email_messages::template.eq(t));
            }
            if let Some(b) = &filter.batch_id {
                q = q.filter(email_messages::batch_id.eq(b));
            }
            shared_db::page_in_order!(q, email_messages::id, order, &after)
                .limit(limit + 1)
                .load(c)
                .await
        })?;
        let more = rows.len() as i64 > limit;
        let rows: Vec<Head> = rows.into_iter().take(limit as usize).collect();
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let deliveries = deliveries_of(&mut conn, &ids).await?;
        let items = rows
            .into_iter()
            .map(|h| {
                let mine: Vec<Delivery> = deliveries.iter().filter(|d| d.email_id == h.id).cloned().collect();
                view(h, &mine)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = more
            .then(|| {
                items
                    .last()
                    .map(|e: &Email| shared_db::paging::encode_ordered(order, &e.id))
            })
            .flatten();
        Ok(EmailPage { items, next_cursor })
    }

    // ----- templates -----

    /// Creates or replaces a template (`true` = created).
    pub async fn put_template(
        &self,
        name: &str,
        body: TemplateBody,
        actor: &str,
    ) -> Result<(EmailTemplate, bool), MailError> {
        check_template_name(name)?;
        let parts = Parts {
            subject: body.subject.clone(),
            html: body.html.clone(),
            text: body.text.clone(),
        };
        if parts.subject.trim().is_empty() {
            return Err(invalid("subject", "must not be empty"));
        }
        if parts.html.is_none() && parts.text.is_none() {
            return Err(invalid("html", "give html, text or both"));
        }
        template::check(&parts)?;
        let mut conn = self.pool.get().await?;
        let name = name.to_owned();
        let actor = actor.to_owned();
        let (row, created) = conn
            .transaction::<_, MailError, _>(async move |c| {
                let now = shared_db::now();
                let old = find_template(c, &name).await?;
                let row = TemplateRow {
                    name: name.clone(),
                    subject: body.subject,
                    html: body.html,
                    text: body.text,
                    description: body.description,
                    version: old.as_ref().map_or(1, |o| o.version + 1),
                    created_at: old.as_ref().map_or(now, |o| o.created_at),
                    updated_at: now,
                };
                let stored = row.clone();
                match &old {
                    None => with_conn!(&mut *c, |c| diesel::insert_into(email_templates::table)
                        .values(&stored)
                        .execute(c)
                        .await)?,
                    Some(_) => with_conn!(&mut *c, |c| diesel::update(email_templates::table.find(&stored.name))
                        .set(&stored)
                        .execute(c)
                        .await)?,
                };
                events::record(
                    c,
                    "email.template_saved",
                    &actor,
                    &format!("email_template:{name}"),
                    json!({ "version": row.version }),
                )
                .await?;
                Ok((row, old.is_none()))
            })
            .await?;
        Ok((row.into_view(), created))
    }

    /// One template.
    pub async fn get_template(&self, name: &str) -> Result<EmailTemplate, MailError> {
        let mut conn = self.pool.get().await?;
        Ok(find_template(&mut conn, name)
            .await?
            .ok_or(MailError::NotFound("template"))?
            .into_view())
    }

    /// Templates by name.
    pub async fn list_templates(&self, limit: Option<u32>, after: Option<&str>) -> Result<TemplatePage, MailError> {
        let limit = page_limit(limit)?;
        let after = cursor(after)?;
        let mut conn = self.pool.get().await?;
        let rows: Vec<TemplateRow> = with_conn!(&mut *conn, |c| {
            let mut q = email_templates::table.select(TemplateRow::as_select()).into_boxed();
            if let Some(a) = &after {
                q = q.filter(email_templates::name.gt(a));
            }
            q.order(email_templates::name.asc()).limit(limit + 1).load(c).await
        })?;
        let more = rows.len() as i64 > limit;
        let items: Vec<EmailTemplate> = rows
            .into_iter()
            .take(limit as usize)
            .map(TemplateRow::into_view)
            .collect();
        let next_cursor = more
            .then(|| items.last().map(|t| shared_db::paging::encode(&t.name)))
            .flatten();
        Ok(TemplatePage { items, next_cursor })
    }

    /// Deletes a template (messages rendered from it keep their content).
    pub async fn delete_template(&self, name: &str, actor: &str) -> Result<(), MailError> {
        let mut conn = self.pool.get().await?;
        let name = name.to_owned();
        let actor = actor.to_owned();
        conn.transaction::<_, MailError, _>(async move |c| {
            let n = with_conn!(&mut *c, |c| diesel::delete(email_templates::table.find(&name))
                .execute(c)
                .await)?;
            if n == 0 {
                return Err(MailError::NotFound("template"));
            }
            events::record(
                c,
                "email.template_deleted",
                &actor,
                &format!("email_template:{name}"),
                json!({}),
            )
            .await?;
            Ok(())
        })
        .await
    }

    // ----- suppressions -----

    /// The suppression list, by address.
    pub async fn list_suppressions(&self, filter: &SuppressionFilter) -> Result<SuppressionPage, MailError> {
        let limit = page_limit(filter.limit)?;
        let after = cursor(filter.cursor.as_deref())?;
        let mut conn = self.pool.get().await?;
        let rows: Vec<SuppressionRow> = with_conn!(&mut *conn, |c| {
            let mut q = email_suppressions::table
                .select(SuppressionRow::as_select())
                .into_boxed();
            if let Some(r) = filter.reason {
                q = q.filter(email_suppressions::reason.eq(r.as_str()));
            }
            if let Some(a) = &after {
                q = q.filter(email_suppressions::address.gt(a));
            }
            q.order(email_suppressions::address.asc())
                .limit(limit + 1)
                .load(c)
                .await
        })?;
        let more = rows.len() as i64 > limit;
        let items: Vec<Suppression> = rows
            .into_iter()
            .take(limit as usize)
            .map(SuppressionRow::into_view)
            .collect();
        let next_cursor = more
            .then(|| items.last().map(|s| shared_db::paging::encode(&s.address)))
            .flatten();
        Ok(SuppressionPage { items, next_cursor })
    }

    /// Whether `address` is suppressed.
    pub async fn suppression(&self, address: &str) -> Result<Suppression, MailError> {
        let key = suppression_key(address)?;
        let mut conn = self.pool.get().await?;
        let row: Option<SuppressionRow> = with_conn!(&mut *conn, |c| email_suppressions::table
            .find(&key)
            .select(SuppressionRow::as_select())
            .first(c)
            .await
            .optional())?;
        Ok(row.ok_or(MailError::NotFound("suppression"))?.into_view())
    }

    /// Suppresses an address by hand (`true` = newly added).
    pub async fn add_suppression(&self, req: AddSuppression, actor: &str) -> Result<(Suppression, bool), MailError> {
        let key = suppression_key(&req.address)?;
        let mut conn = self.pool.get().await?;
        let actor = actor.to_owned();
        let k = key.clone();
        let added = conn
            .transaction::<_, MailError, _>(async move |c| {
                let n = suppress(c, &k, SuppressionReason::Manual, req.detail.as_deref(), None).await?;
                if n > 0 {
                    events::record(
                        c,
                        "email.suppression_added",
                        &actor,
                        &format!("email_suppression:{k}"),
                        json!({ "reason": "manual" }),
                    )
                    .await?;
                }
                Ok(n > 0)
            })
            .await?;
        Ok((self.suppression(&key).await?, added))
    }

    /// Lifts a suppression.
    pub async fn delete_suppression(&self, address: &str, actor: &str) -> Result<(), MailError> {
        let key = suppression_key(address)?;
        let mut conn = self.pool.get().await?;
        let actor = actor.to_owned();
        conn.transaction::<_, MailError, _>(async move |c| {
            let n = with_conn!(&mut *c, |c| diesel::delete(email_suppressions::table.find(&key))
                .execute(c)
                .await)?;
            if n == 0 {
                return Err(MailError::NotFound("suppression"));
            }
            events::record(
                c,
                "email.suppression_removed",
                &actor,
                &format!("email_suppression:{key}"),
                json!({}),
            )
            .await?;
            Ok(())
        })
        .await
    }

    // ----- SES notifications -----

    /// Handles one SNS delivery: verifies it, confirms subscriptions, and turns SES
    /// bounce, complaint and delivery notifications into statuses and suppressions.
    /// Redeliveries of the same SNS message are answered `duplicate`.
    pub async fn handle_sns(&self, body: &[u8]) -> Result<SnsOutcome, MailError> {
        let verifier = self
            .sns
            .as_ref()
            .ok_or_else(|| SnsError::Forged("SNS notifications are not accepted by this gateway".into()))?;
        let msg = verifier.verify(body).await?;
        let outcome = |r: &str| SnsOutcome { result: r.to_owned() };
        let mut conn = self.pool.get().await?;
        let key = msg.message_id.chars().take(200).collect::<String>();
        if let Seen::Replay(_) | Seen::Conflict = idempotency::check(&mut conn, SNS_SCOPE, sns_key(&key)).await? {
            return Ok(outcome("duplicate"));
        }
        let result = match msg.kind.as_str() {
            "SubscriptionConfirmation" => {
                verifier.confirm(&msg).await?;
                tracing::info!(topic = %msg.topic_arn, "confirmed the SNS subscription");
                "confirmed"
            }
            "Notification" => "processed",
            _ => "ignored",
        };
        let notification: Option<Value> = (msg.kind == "Notification")
            .then(|| serde_json::from_str(&msg.message).ok())
            .flatten();
        let topic = msg.topic_arn.clone();
        let kind = msg.kind.clone();
        let recorded = conn
            .transaction::<_, MailError, _>(async move |c| {
                idempotency::remember(c, SNS_SCOPE, sns_key(&key), &key.chars().take(36).collect::<String>()).await?;
                match notification {
                    Some(n) => apply_notification(c, &n).await,
                    None => {
                        events::record(
                            c,
                            &format!("email.sns_{}", kind.to_ascii_lowercase()),
                            "sns",
                            &format!("sns_topic:{topic}"),
                            json!({}),
                        )
                        .await?;
                        Ok(())
                    }
                }
            })
            .await;
        match recorded {
            Ok(()) => Ok(outcome(result)),
            Err(MailError::Db(e)) if e.is_unique_violation() => Ok(outcome("duplicate")),
            Err(e) => Err(e),
        }
    }

    // ----- delivering -----

    /// Sends one group of recipients (the `email.send` job).
    async fn deliver(&self, job: &Job) -> Result<(), JobError> {
        let payload: Value = job.payload().map_err(|e| JobError::Fatal(e.to_string()))?;
        let Some(delivery_id) = payload["delivery_id"].as_str() else {
            return Err(JobError::Fatal("no delivery_id".into()));
        };
        let Some(mailer) = self.mailer.clone() else {
            // Queued while a transport was configured: kept until one is again.
            return Err(JobError::Defer(Duration::from_secs(60)));
        };
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let delivery: Option<Delivery> = with_conn!(&mut *conn, |c| email_deliveries::table
            .find(delivery_id)
            .select(Delivery::as_select())
            .first(c)
            .await
            .optional())
        .map_err(|e| retry(e.into()))?;
        let Some(delivery) = delivery else {
            return Err(JobError::Fatal(format!("delivery {delivery_id} is gone")));
        };
        if matches!(delivery.status.as_str(), "sent" | "captured" | "failed" | "suppressed") {
            return Ok(());
        }
        let message: Option<(String, Vec<u8>)> = with_conn!(&mut *conn, |c| email_messages::table
            .find(&delivery.email_id)
            .select((email_messages::from_addr, email_messages::raw_mime))
            .first(c)
            .await
            .optional())
        .map_err(|e| retry(e.into()))?;
        let Some((from, raw)) = message else {
            return Err(JobError::Fatal(format!("email {} is gone", delivery.email_id)));
        };
        let source = Mailbox::parse(&from)
            .map(|m| m.email)
            .map_err(|e| JobError::Fatal(format!("stored sender: {e}")))?;
        let recipients = delivery.recipients();
        let keys: Vec<String> = recipients.iter().map(|r| r.to_ascii_lowercase()).collect();
        let suppressed: HashSet<String> = with_conn!(&mut *conn, |c| email_suppressions::table
            .filter(email_suppressions::address.eq_any(&keys))
            .select(email_suppressions::address)
            .load::<String>(c)
            .await)
        .map_err(|e| retry(e.into()))?
        .into_iter()
        .collect();
        let (dropped, send_to): (Vec<String>, Vec<String>) = recipients
            .into_iter()
            .partition(|r| suppressed.contains(&r.to_ascii_lowercase()));
        if send_to.is_empty() {
            return self
                .finish(&mut conn, &delivery, Outcome::Suppressed, &dropped)
                .await
                .map_err(retry);
        }
        self.pace(mailer.as_ref(), send_to.len()).await?;
        if job.attempts <= 1 {
            self.mark_sending(&mut conn, &delivery).await.map_err(retry)?;
        }
        match mailer.send(&source, &send_to, &raw).await {
            Ok(provider_id) => {
                let outcome = if mailer.captures() {
                    Outcome::Captured(provider_id, send_to)
                } else {
                    Outcome::Sent(provider_id, send_to)
                };
                self.finish(&mut conn, &delivery, outcome, &dropped)
                    .await
                    .map_err(retry)
            }
            Err(SendError::Transient(m)) if job.attempts < job.max_attempts => {
                note_error(&mut conn, &delivery.email_id, &m).await.map_err(retry)?;
                Err(JobError::Retry(m))
            }
            Err(SendError::Transient(m) | SendError::Permanent(m)) => {
                self.finish(&mut conn, &delivery, Outcome::Failed(m.clone(), send_to), &dropped)
                    .await
                    .map_err(retry)?;
                Err(JobError::Fatal(m))
            }
        }
    }

    /// Waits for the account's recipient budget (deferring the job, without using an
    /// attempt), reading SES's quota when it is stale.
    async fn pace(&self, mailer: &dyn Mailer, recipients: usize) -> Result<(), JobError> {
        let stale = self
            .pace
            .read()
            .map(|p| p.read_at.is_none_or(|t| t.elapsed() > self.settings.quota_refresh))
            .unwrap_or(true);
        if stale && self.settings.max_send_rate.is_none() {
            let rate = match mailer.quota().await {
                Ok(q) => q.map(|q| q.max_send_rate),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the SES sending quota; keeping the last pace");
                    self.send_rate()
                }
            };
            if let Ok(mut p) = self.pace.write() {
                if p.rate != rate {
                    tracing::info!(?rate, "email send pace (recipients per second)");
                    p.limiter = rate.and_then(limiter);
                    p.rate = rate;
                }
                p.read_at = Some(Instant::now());
            }
        }
        let limiter = self.pace.read().ok().and_then(|p| p.limiter.clone());
        let (Some(limiter), Some(n)) = (limiter, NonZeroU32::new(recipients as u32)) else {
            return Ok(());
        };
        match limiter.check_n(n) {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(not_until)) => Err(JobError::Defer(not_until.wait_time_from(self.clock.now()))),
        }
    }

    async fn mark_sending(&self, conn: &mut DbConn, delivery: &Delivery) -> Result<(), MailError> {
        let d = delivery.clone();
        conn.transaction::<_, MailError, _>(async move |c| {
            let now = shared_db::now();
            with_conn!(&mut *c, |c| diesel::update(email_deliveries::table.find(&d.id))
                .set((
                    email_deliveries::status.eq("sending"),
                    email_deliveries::updated_at.eq(now)
                ))
                .execute(c)
                .await)?;
            let n = with_conn!(&mut *c, |c| diesel::update(
                email_messages::table
                    .find(&d.email_id)
                    .filter(email_messages::status.eq(EmailStatus::Queued.as_str()))
            )
            .set((
                email_messages::status.eq(EmailStatus::Sending.as_str()),
                email_messages::updated_at.eq(now)
            ))
            .execute(c)
            .await)?;
            if n > 0 {
                record(c, "email.sending", &d.email_id, json!({})).await?;
            }
            Ok(())
        })
        .await
    }

    /// Records a delivery's end and the message's resulting status, in one transaction.
    async fn finish(
        &self,
        conn: &mut DbConn,
        delivery: &Delivery,
        outcome: Outcome,
        dropped: &[String],
    ) -> Result<(), MailError> {
        let d = delivery.clone();
        let dropped = dropped.to_vec();
        conn.transaction::<_, MailError, _>(async move |c| {
            let now = shared_db::now();
            // Lock the message row first, so two groups finishing at once see each other.
            with_conn!(&mut *c, |c| diesel::update(email_messages::table.find(&d.email_id))
                .set(email_messages::updated_at.eq(now))
                .execute(c)
                .await)?;
            let (status, provider_id, error) = match &outcome {
                Outcome::Sent(id, _) => ("sent", Some(id.clone()), None),
                Outcome::Captured(id, _) => ("captured", Some(id.clone()), None),
                Outcome::Failed(m, _) => ("failed", None, Some(m.clone())),
                Outcome::Suppressed => ("suppressed", None, None),
            };
            let suppressed_json = (!dropped.is_empty()).then(|| serde_json::to_string(&dropped).unwrap_or_default());
            with_conn!(&mut *c, |c| diesel::update(email_deliveries::table.find(&d.id))
                .set((
                    email_deliveries::status.eq(status),
                    email_deliveries::provider_id.eq(&provider_id),
                    email_deliveries::error.eq(&error),
                    email_deliveries::suppressed.eq(&suppressed_json),
                    email_deliveries::updated_at.eq(now),
                ))
                .execute(c)
                .await)?;
            if !dropped.is_empty() {
                record(c, "email.suppressed", &d.email_id, json!({ "recipients": dropped })).await?;
            }
            match &outcome {
                Outcome::Sent(id, to) => {
                    record(
                        c,
                        "email.sent",
                        &d.email_id,
                        json!({ "provider_id": id, "recipients": to }),
                    )
                    .await?
                }
                Outcome::Captured(id, to) => {
                    record(
                        c,
                        "email.captured",
                        &d.email_id,
                        json!({ "provider_id": id, "recipients": to }),
                    )
                    .await?
                }
                Outcome::Failed(m, to) => {
                    record(c, "email.failed", &d.email_id, json!({ "reason": m, "recipients": to })).await?
                }
                Outcome::Suppressed => {}
            }
            let all: Vec<String> = with_conn!(&mut *c, |c| email_deliveries::table
                .filter(email_deliveries::email_id.eq(&d.email_id))
                .select(email_deliveries::status)
                .load(c)
                .await)?;
            let open = all.iter().any(|s| s == "queued" || s == "sending");
            let aggregate = if open {
                EmailStatus::Sending
            } else if all.iter().any(|s| s == "sent") {
                EmailStatus::Sent
            } else if all.iter().any(|s| s == "captured") {
                EmailStatus::Captured
            } else if all.iter().all(|s| s == "suppressed") {
                EmailStatus::Suppressed
            } else {
                EmailStatus::Failed
            };
            let sent_at = matches!(outcome, Outcome::Sent(..)).then_some(now);
            with_conn!(&mut *c, |c| diesel::update(
                email_messages::table.find(&d.email_id).filter(
                    email_messages::status.eq_any([EmailStatus::Queued.as_str(), EmailStatus::Sending.as_str()])
                )
            )
            .set((
                email_messages::status.eq(aggregate.as_str()),
                email_messages::error.eq(&error),
            ))
            .execute(c)
            .await)?;
            if let Some(at) = sent_at {
                with_conn!(&mut *c, |c| diesel::update(
                    email_messages::table
                        .find(&d.email_id)
                        .filter(email_messages::sent_at.is_null())
                )
                .set(email_messages::sent_at.eq(Some(at)))
                .execute(c)
                .await)?;
            }
            Ok(())
        })
        .await
    }
}

enum Outcome {
    Sent(String, Vec<String>),
    /// Kept by a transport that delivers nothing (the dev mailbox).
    Captured(String, Vec<String>),
    Failed(String, Vec<String>),
    Suppressed,
}

/// What an idempotency key says about a request (always new without a key).
async fn seen(conn: &mut DbConn, scope: &str, key: Option<idempotency::Key<'_>>) -> Result<Seen, DbError> {
    match key {
        Some(k) => idempotency::check(conn, scope, k).await,
        None => Ok(Seen::New),
    }
}

/// The owner of SNS message ids: SNS itself, a namespace no API key reaches.
static SNS_OWNER: Owner = Owner::System("sns");

/// The idempotency key of one SNS message.
fn sns_key(message_id: &str) -> idempotency::Key<'_> {
    idempotency::Key {
        owner: &SNS_OWNER,
        key: message_id,
        hash: "sns",
    }
}

/// Stores a prepared message, its deliveries, their jobs and the `email.queued` event.
async fn store(c: &mut DbConn, p: Prepared, actor: &str) -> Result<(), MailError> {
    let mut row = p.row;
    row.created_by = Some(actor.to_owned());
    let id = row.id.clone();
    let recipients: usize = p.deliveries.iter().map(|d| d.recipients().len()).sum();
    with_conn!(&mut *c, |c| diesel::insert_into(email_messages::table)
        .values(&row)
        .execute(c)
        .await)?;
    for d in &p.deliveries {
        with_conn!(&mut *c, |c| diesel::insert_into(email_deliveries::table)
            .values(d)
            .execute(c)
            .await)?;
        let job = NewJob::new(SEND_QUEUE, &json!({ "delivery_id": d.id }))?.max_attempts(ATTEMPTS);
        jobs::enqueue(c, job).await?;
    }
    events::record(
        c,
        "email.queued",
        actor,
        &format!("email:{id}"),
        json!({
            "from": row.from_addr, "subject": row.subject, "recipients": recipients,
            "groups": p.deliveries.len(), "template": row.template, "size": row.size,
        }),
    )
    .await?;
    Ok(())
}

/// Applies one SES notification (bounce, complaint, delivery or another event).
async fn apply_notification(c: &mut DbConn, n: &Value) -> Result<(), MailError> {
    let kind = n["notificationType"]
        .as_str()
        .or_else(|| n["eventType"].as_str())
        .unwrap_or("Unknown")
        .to_owned();
    let provider_id = n["mail"]["messageId"].as_str().unwrap_or_default().to_owned();
    let email_id: Option<String> = if provider_id.is_empty() {
        None
    } else {
        with_conn!(&mut *c, |c| email_deliveries::table
            .filter(email_deliveries::provider_id.eq(&provider_id))
            .select(email_deliveries::email_id)
            .first(c)
            .await
            .optional())?
    };
    let subject = match &email_id {
        Some(id) => format!("email:{id}"),
        None => format!("ses_message:{provider_id}"),
    };
    let addresses = |list: &Value, field: &str| -> Vec<(String, Option<String>)> {
        list[field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        r["emailAddress"].as_str().map(|e| {
                            let bare = Mailbox::parse(e).map(|m| m.email).unwrap_or_else(|_| e.to_owned());
                            (bare, r["diagnosticCode"].as_str().map(str::to_owned))
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (event, status, data): (&str, Option<EmailStatus>, Value) = match kind.as_str() {
        "Bounce" => {
            let b = &n["bounce"];
            let permanent = b["bounceType"].as_str() == Some("Permanent");
            let recipients = addresses(b, "bouncedRecipients");
            if permanent {
                for (addr, diag) in &recipients {
                    suppress(
                        c,
                        &addr.to_ascii_lowercase(),
                        SuppressionReason::Bounce,
                        diag.as_deref(),
                        email_id.as_deref(),
                    )
                    .await?;
                }
            }
            (
                "email.bounced",
                permanent.then_some(EmailStatus::Bounced),
                json!({
                    "bounce_type": b["bounceType"], "bounce_sub_type": b["bounceSubType"],
                    "recipients": recipients.iter().map(|(a, d)| json!({"address": a, "diagnostic": d})).collect::<Vec<_>>(),
                    "provider_id": provider_id,
                }),
            )
        }
        "Complaint" => {
            let cpl = &n["complaint"];
            let recipients = addresses(cpl, "complainedRecipients");
            for (addr, _) in &recipients {
                suppress(
                    c,
                    &addr.to_ascii_lowercase(),
                    SuppressionReason::Complaint,
                    cpl["complaintFeedbackType"].as_str(),
                    email_id.as_deref(),
                )
                .await?;
            }
            (
                "email.complained",
                Some(EmailStatus::Complained),
                json!({
                    "feedback_type": cpl["complaintFeedbackType"],
                    "recipients": recipients.iter().map(|(a, _)| a).collect::<Vec<_>>(),
                    "provider_id": provider_id,
                }),
            )
        }
        "Delivery" => (
            "email.delivered",
            Some(EmailStatus::Delivered),
            json!({
                "recipients": n["delivery"]["recipients"],
                "smtp_response": n["delivery"]["smtpResponse"],
                "provider_id": provider_id,
            }),
        ),
        other => (
            "email.ses_event",
            None,
            json!({ "ses_type": other, "provider_id": provider_id }),
        ),
    };
    events::record(c, event, "sns", &subject, data).await?;
    if let (Some(id), Some(status)) = (&email_id, status) {
        // A delivery report never hides a bounce or complaint that came first.
        let from: &[&str] = if status == EmailStatus::Delivered {
            &["sent", "sending"]
        } else {
            &["sent", "sending", "delivered", "bounced"]
        };
        let now = shared_db::now();
        with_conn!(&mut *c, |c| diesel::update(
            email_messages::table
                .find(id)
                .filter(email_messages::status.eq_any(from))
        )
        .set((
            email_messages::status.eq(status.as_str()),
            email_messages::updated_at.eq(now)
        ))
        .execute(c)
        .await)?;
    }
    Ok(())
}

/// Adds an address to the list if absent; the number of rows added.
async fn suppress(
    c: &mut DbConn,
    address: &str,
    reason: SuppressionReason,
    detail: Option<&str>,
    email_id: Option<&str>,
) -> Result<usize, MailError> {
    let row = SuppressionRow {
        address: address.to_owned(),
        reason: reason.as_str().to_owned(),
        detail: detail.map(|d| d.chars().take(1000).collect()),
        email_id: email_id.map(str::to_owned),
        created_at: shared_db::now(),
    };
    Ok(with_conn!(c, |c| diesel::insert_or_ignore_into(
        email_suppressions::table
    )
    .values(&row)
    .execute(c)
    .await)?)
}

fn suppression_key(address: &str) -> Result<String, MailError> {
    Mailbox::parse(address)
        .map(|m| m.email.to_ascii_lowercase())
        .map_err(|e| invalid("address", e))
}

fn view(h: Head, deliveries: &[Delivery]) -> Result<Email, MailError> {
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

async fn find_head(conn: &mut DbConn, id: &str) -> Result<Option<Head>, MailError> {
    Ok(with_conn!(conn, |c| email_messages::table
        .find(id)
        .select(Head::as_select())
        .first(c)
        .await
        .optional())?)
}

async fn deliveries_of(conn: &mut DbConn, ids: &[String]) -> Result<Vec<Delivery>, MailError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(with_conn!(conn, |c| email_deliveries::table
        .filter(email_deliveries::email_id.eq_any(ids))
        .select(Delivery::as_select())
        .load(c)
        .await)?)
}

async fn find_template(conn: &mut DbConn, name: &str) -> Result<Option<TemplateRow>, MailError> {
    Ok(with_conn!(conn, |c| email_templates::table
        .find(name)
        .select(TemplateRow::as_select())
        .first(c)
        .await
        .optional())?)
}

async fn note_error(conn: &mut DbConn, email_id: &str, error: &str) -> Result<(), MailError> {
    let now = shared_db::now();
    with_conn!(conn, |c| diesel::update(email_messages::table.find(email_id))
        .set((
            email_messages::error.eq(Some(error)),
            email_messages::updated_at.eq(now)
        ))
        .execute(c)
        .await)?;
    Ok(())
}

async fn record(c: &mut DbConn, event_type: &str, email_id: &str, data: Value) -> Result<(), MailError> {
    Ok(events::record(c, event_type, "system", &format!("email:{email_id}"), data).await?)
}

fn check_template_name(name: &str) -> Result<(), MailError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid("name", "1 to 100 of a-z, A-Z, 0-9, - _ ."))
    }
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    if headers.len() > 30 {
        return Err("at most 30 headers".into());
    }
    headers
        .iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let name_ok =
                !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
            if !name_ok {
                return Err(format!("`{}` is not a header name", name.escape_debug()));
            }
            if RESERVED_HEADERS.contains(&lower.as_str())
                || lower.starts_with("content-")
                || lower.starts_with("x-ses-")
            {
                return Err(format!("`{name}` is set by the message itself; it cannot be given"));
            }
            if value.chars().any(char::is_control) || value.len() > 998 {
                return Err(format!(
                    "`{name}`: the value may not contain line breaks or control characters (at most 998 bytes)"
                ));
            }
            Ok((name.clone(), value.clone()))
        })
        .collect()
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if tags.len() > 20 {
        return Err("at most 20 tags".into());
    }
    for (k, v) in tags {
        let ok = !k.is_empty()
            && k.len() <= 64
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && v.chars().count() <= 256
            && !v.chars().any(char::is_control);
        if !ok {
            return Err(format!(
                "`{}`: names are 1 to 64 of A-Z a-z 0-9 _ -, values at most 256 characters",
                k.escape_debug()
            ));
        }
    }
    Ok(())
}

fn guess_type(filename: &str) -> &'static str {
    let ext = filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("txt" | "log") => "text/plain",
        Some("csv") => "text/csv",
        Some("html" | "htm") => "text/html",
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        Some("ics") => "text/calendar",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    }
}

fn decode_files(attachments: &[AttachmentIn], at: &str) -> Result<Vec<File>, MailError> {
    if attachments.len() > 50 {
        return Err(invalid(format!("{at}attachments"), "at most 50 files"));
    }
    let mut ids = HashSet::new();
    attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let field = format!("{at}{}attachments[{i}]", if at.is_empty() { "" } else { "." });
            let name = a.filename.trim();
            if name.is_empty()
                || name.len() > 255
                || name
                    .chars()
                    .any(|c| c.is_control() || c == '/' || c == '\\' || c == '"')
            {
                return Err(invalid(
                    format!("{field}.filename"),
                    "1 to 255 characters, no path separators, quotes or control characters",
                ));
            }
            if let Some((_, ext)) = name.rsplit_once('.')
                && BLOCKED_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
            {
                return Err(invalid(
                    format!("{field}.filename"),
                    format!("SES does not carry .{ext} files"),
                ));
            }
            let content_type = match &a.content_type {
                Some(ct) => {
                    let ct = ct.trim();
                    let ok = ct.split_once('/').is_some_and(|(t, s)| {
                        let token = |x: &str| {
                            !x.is_empty()
                                && x.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
                        };
                        token(t) && token(s)
                    });
                    if !ok {
                        return Err(invalid(
                            format!("{field}.content_type"),
                            "a media type such as application/pdf",
                        ));
                    }
                    ct.to_ascii_lowercase()
                }
                None => guess_type(name).to_owned(),
            };
            let compact: String = a.content_base64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let content = data_encoding::BASE64
                .decode(compact.as_bytes())
                .map_err(|_| invalid(format!("{field}.content_base64"), "not standard base64"))?;
            if let Some(cid) = &a.content_id {
                let ok = !cid.is_empty()
                    && cid.len() <= 100
                    && cid
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
                if !ok || !ids.insert(cid.clone()) {
                    return Err(invalid(
                        format!("{field}.content_id"),
                        "1 to 100 of A-Z a-z 0-9 . _ - @, unique in the message",
                    ));
                }
            }
            Ok(File {
                filename: name.to_owned(),
                content_type,
                content,
                content_id: a.content_id.clone(),
            })
        })
        .collect()
}

fn page_limit(limit: Option<u32>) -> Result<i64, MailError> {
    let limit = i64::from(limit.unwrap_or(50));
    if (1..=200).contains(&limit) {
        Ok(limit)
    } else {
        Err(invalid("limit", "must be 1 to 200"))
    }
}

fn cursor(c: Option<&str>) -> Result<Option<String>, MailError> {
    c.map(|c| shared_db::paging::decode(c).ok_or_else(|| invalid("cursor", "not a cursor from this API")))
        .transpose()
}

fn conflict_key() -> MailError {
    MailError::Conflict {
        code: "idempotency_conflict",
        message: "this Idempotency-Key was used with a different request".into(),
    }
}

fn retry(e: MailError) -> JobError {
    JobError::Retry(e.to_string())
}

/// Runs `email.send` jobs.
pub struct SendHandler(pub Arc<MailService>);

impl JobHandler for SendHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.deliver(job))
    }
}
