//! Accepting messages (stored and queued in one transaction), delivering them through the
//! job queue in per-channel order at Slack's pace, and updating posted ones.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use shared_db::events;
use shared_db::idempotency::{self, Seen};
use shared_db::jobs::{self, Job, NewJob};
use shared_db::worker::{JobError, JobHandler};
use shared_db::{DbConn, DbError, DbPool, with_conn};
use tokio::sync::Notify;

use crate::layout::{self, Alert, Mention, Rendered};
use crate::model::{Accepted, MessageFilter, MessagePage, MessagePatch, MessageStatus, PostMessage, SlackMessage};
use crate::schema::slack_messages;
use crate::transport::{SlackError, SlackMode, SlackNotifier};

/// The queue of new messages.
pub const POST_QUEUE: &str = "slack.post";
/// The queue of updates to posted messages.
pub const UPDATE_QUEUE: &str = "slack.update";
const IDEMPOTENCY_SCOPE: &str = "slack.messages";

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
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for NotifyError {
    fn from(e: diesel::result::Error) -> Self {
        NotifyError::Db(e.into())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> NotifyError {
    NotifyError::Invalid {
        field,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = slack_messages, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
struct Row {
    id: String,
    channel: String,
    level: String,
    title: String,
    request: String,
    status: String,
    slack_channel: Option<String>,
    ts: Option<String>,
    thread_ts: Option<String>,
    error: Option<String>,
    created_by: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    posted_at: Option<NaiveDateTime>,
}

impl Row {
    fn request(&self) -> Result<PostMessage, NotifyError> {
        serde_json::from_str(&self.request)
            .map_err(|e| NotifyError::Db(DbError::Corrupt(format!("slack message {}: {e}", self.id))))
    }

    fn into_message(self) -> Result<SlackMessage, NotifyError> {
        let request = self.request()?;
        Ok(SlackMessage {
            level: request.level,
            status: MessageStatus::parse(&self.status).unwrap_or(MessageStatus::Failed),
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
            posted_at: self.posted_at.map(|t| t.and_utc()),
            id: self.id,
            channel: self.channel,
            title: self.title,
            slack_channel: self.slack_channel,
            ts: self.ts,
            thread_ts: self.thread_ts,
            error: self.error,
            request,
        })
    }
}

/// A Slack `ts`: seconds, a dot, microseconds.
fn is_slack_ts(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.len() <= 12
            && b.len() <= 8
            && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_digit())
    })
}

fn check_channel(c: &str) -> Result<String, NotifyError> {
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
fn check(req: &PostMessage) -> Result<Option<Mention>, NotifyError> {
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

fn alert<'a>(req: &'a PostMessage, mention: Option<&'a Mention>, id: &'a str, at: NaiveDateTime) -> Alert<'a> {
    Alert {
        level: req.level,
        title: &req.title,
        text: req.text.as_deref(),
        fields: &req.fields,
        links: &req.links,
        source: req.source.as_deref(),
        environment: req.environment.as_deref(),
        mention,
        event_id: id,
        time: at.and_utc(),
    }
}

/// Slack messages.
pub struct SlackService {
    pool: DbPool,
    /// None: not configured (posts and updates are refused).
    notifier: Option<Arc<dyn SlackNotifier>>,
    default_channel: Option<String>,
    default_environment: Option<String>,
    pacing: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    wake: Arc<Notify>,
}

impl SlackService {
    /// Builds the service. `notifier` is the transport (none: Slack is not configured,
    /// and every post or update is refused with [`NotifyError::NotConfigured`], storing
    /// nothing); `wake` is notified after each enqueue (give it to the worker).
    pub fn new(
        pool: DbPool,
        notifier: Option<Arc<dyn SlackNotifier>>,
        default_channel: Option<String>,
        default_environment: Option<String>,
        per_channel_per_second: u32,
        wake: Arc<Notify>,
    ) -> Self {
        let rate = NonZeroU32::new(per_channel_per_second).unwrap_or(NonZeroU32::MIN);
        Self {
            pool,
            notifier,
            default_channel,
            default_environment,
            pacing: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(NonZeroU32::MIN)),
            clock: DefaultClock::default(),
            wake,
        }
    }

    /// How messages leave: Slack, the dev sink, or not at all.
    pub fn mode(&self) -> SlackMode {
        match &self.notifier {
            None => SlackMode::NotConfigured,
            Some(n) if n.captures() => SlackMode::Dev,
            Some(_) => SlackMode::Slack,
        }
    }

    /// `slack`, `dev` or `not_configured`.
    pub fn transport(&self) -> &'static str {
        self.mode().as_str()
    }

    /// The channel of messages that name none (`SLACK_DEFAULT_CHANNEL`).
    pub fn default_channel(&self) -> Option<&str> {
        self.default_channel.as_deref()
    }

    /// The status a delivered message gets from this gateway's transport.
    fn delivered(&self) -> Result<MessageStatus, NotifyError> {
        match self.mode() {
            SlackMode::Slack => Ok(MessageStatus::Posted),
            SlackMode::Dev => Ok(MessageStatus::Captured),
            SlackMode::NotConfigured => Err(NotifyError::NotConfigured),
        }
    }

    /// The Block Kit JSON for `req`, without sending it.
    pub fn preview(&self, req: &PostMessage) -> Result<Rendered, NotifyError> {
        let mention = check(req)?;
        let mut req = req.clone();
        req.environment = req.environment.or_else(|| self.default_environment.clone());
        Ok(layout::render(&alert(
            &req,
            mention.as_ref(),
            "preview",
            shared_db::now(),
        )))
    }

    /// Stores and queues a message in one transaction. With an idempotency key, a
    /// repeat of the same request returns the first message (`true` = replay).
    pub async fn submit(
        &self,
        mut req: PostMessage,
        idempotency: Option<idempotency::Key<'_>>,
        actor: &str,
    ) -> Result<(SlackMessage, bool), NotifyError> {
        let delivered = self.delivered()?;
        check(&req)?;
        let mut conn = self.pool.get().await?;
        if let Some(key) = idempotency {
            match idempotency::check(&mut conn, IDEMPOTENCY_SCOPE, key).await? {
                Seen::Replay(id) => return Ok((self.load(&mut conn, &id).await?, true)),
                Seen::Conflict => return Err(conflict_key()),
                Seen::New => {}
            }
        }
        req.environment = req.environment.or_else(|| self.default_environment.clone());
        let mut thread_ts = None;
        let mut parent_channel = None;
        if let Some(t) = req.thread_of.as_deref().map(str::trim) {
            if is_slack_ts(t) {
                thread_ts = Some(t.to_owned());
            } else {
                let parent = find(&mut conn, t)
                    .await?
                    .ok_or_else(|| invalid("thread_of", "no message has that id"))?;
                if parent.status == MessageStatus::Failed.as_str() {
                    return Err(invalid("thread_of", "that message failed; it has no thread"));
                }
                if parent.status == MessageStatus::Captured.as_str() && delivered == MessageStatus::Posted {
                    return Err(invalid(
                        "thread_of",
                        "that message was captured by the dev sink and never reached Slack; it has no thread there",
                    ));
                }
                thread_ts = parent.ts.clone();
                parent_channel = Some(parent.channel);
            }
        }
        let channel = match (req.channel.as_deref(), parent_channel) {
            (Some(c), Some(p)) if check_channel(c)? != p => {
                return Err(invalid("thread_of", "the parent message is in another channel"));
            }
            (Some(c), _) => check_channel(c)?,
            (None, Some(p)) => p,
            (None, None) => self
                .default_channel
                .clone()
                .ok_or_else(|| invalid("channel", "give a channel (no SLACK_DEFAULT_CHANNEL is configured)"))?,
        };
        req.channel = Some(channel.clone());
        let now = shared_db::now();
        let row = Row {
            id: shared_db::new_id(),
            channel: channel.clone(),
            level: req.level.as_str().to_owned(),
            title: req.title.trim().to_owned(),
            request: serde_json::to_string(&req).map_err(|e| DbError::Corrupt(e.to_string()))?,
            status: MessageStatus::Queued.as_str().to_owned(),
            slack_channel: None,
            ts: None,
            thread_ts,
            error: None,
            created_by: Some(actor.to_owned()),
            created_at: now,
            updated_at: now,
            posted_at: None,
        };
        let stored = row.clone();
        let key = idempotency.map(|k| (k.owner.clone(), k.key.to_owned(), k.hash.to_owned()));
        let actor = actor.to_owned();
        let saved = conn
            .transaction::<_, NotifyError, _>(async move |c| {
                with_conn!(&mut *c, |c| diesel::insert_into(slack_messages::table)
                    .values(&stored)
                    .execute(c)
                    .await)?;
                let job = NewJob::new(POST_QUEUE, &serde_json::json!({ "message_id": stored.id }))?
                    .ordering_key(format!("slack:{}", stored.channel))
                    .max_attempts(12);
                jobs::enqueue(c, job).await?;
                if let Some((owner, key, hash)) = &key {
                    let key = idempotency::Key { owner, key, hash };
                    idempotency::remember(c, IDEMPOTENCY_SCOPE, key, &stored.id).await?;
                }
                record(
                    c,
                    "slack.queued",
                    &actor,
                    &stored.id,
                    serde_json::json!({
                        "channel": stored.channel, "level": stored.level,
                    }),
                )
                .await
            })
            .await;
        match saved {
            Ok(()) => {}
            Err(NotifyError::Db(e)) if e.is_unique_violation() && idempotency.is_some() => {
                // A concurrent request with the same key won: answer as a repeat.
                let Some(key) = idempotency else {
                    return Err(NotifyError::Db(e));
                };
                return match idempotency::check(&mut conn, IDEMPOTENCY_SCOPE, key).await? {
                    Seen::Replay(id) => Ok((self.load(&mut conn, &id).await?, true)),
                    _ => Err(conflict_key()),
                };
            }
            Err(e) => return Err(e),
        }
        self.wake.notify_one();
        Ok((row.into_message()?, false))
    }

    async fn load(&self, conn: &mut DbConn, id: &str) -> Result<SlackMessage, NotifyError> {
        find(conn, id).await?.ok_or(NotifyError::NotFound)?.into_message()
    }

    /// One message.
    pub async fn get(&self, id: &str) -> Result<SlackMessage, NotifyError> {
        let mut conn = self.pool.get().await?;
        self.load(&mut conn, id).await
    }

    /// Messages matching `filter`, newest first unless `order=asc`.
    pub async fn list(&self, filter: &MessageFilter) -> Result<MessagePage, NotifyError> {
        let limit = i64::from(filter.limit.unwrap_or(50));
        if !(1..=200).contains(&limit) {
            return Err(invalid("limit", "must be 1 to 200"));
        }
        let (order, after) = shared_db::paging::continue_from(filter.cursor.as_deref(), filter.order)
            .map_err(|e| invalid("cursor", e.to_string()))?;
        let mut conn = self.pool.get().await?;
        let rows: Vec<Row> = with_conn!(&mut *conn, |c| {
            let mut q = slack_messages::table.select(Row::as_select()).into_boxed();
            if let Some(ch) = &filter.channel {
                q = q.filter(slack_messages::channel.eq(ch.trim()));
            }
            if let Some(s) = filter.status {
                q = q.filter(slack_messages::status.eq(s.as_str()));
            }
            if let Some(l) = filter.level {
                q = q.filter(slack_messages::level.eq(l.as_str()));
            }
            shared_db::page_in_order!(q, slack_messages::id, order, &after)
                .limit(limit + 1)
                .load(c)
                .await
        })?;
        let more = rows.len() as i64 > limit;
        let items = rows
            .into_iter()
            .take(limit as usize)
            .map(Row::into_message)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if more {
            items.last().map(|m| shared_db::paging::encode_ordered(order, &m.id))
        } else {
            None
        };
        Ok(MessagePage { items, next_cursor })
    }

    /// Changes a message: a queued one is sent with the changes; a posted one is updated
    /// in Slack through the queue (after anything queued before it in its channel), a
    /// captured one in the dev sink.
    pub async fn update(&self, id: &str, patch: MessagePatch, actor: &str) -> Result<Accepted, NotifyError> {
        let delivered = self.delivered()?;
        let mut conn = self.pool.get().await?;
        let target = id.to_owned();
        let actor = actor.to_owned();
        let status = conn
            .transaction::<_, NotifyError, _>(async move |c| {
                let row = find(c, &target).await?.ok_or(NotifyError::NotFound)?;
                let mut req = row.request()?;
                if row.status == MessageStatus::Failed.as_str() {
                    return Err(NotifyError::Conflict {
                        code: "invalid_state",
                        message: "the message failed; post a new one".into(),
                    });
                }
                // A delivered message is changed where it went: a captured one in the dev
                // sink, a posted one in Slack.
                let sent = [MessageStatus::Posted.as_str(), MessageStatus::Captured.as_str()];
                if sent.contains(&row.status.as_str()) && row.status != delivered.as_str() {
                    return Err(NotifyError::Conflict {
                        code: "invalid_state",
                        message: format!(
                            "the message was {} and this gateway's Slack transport is now {}; post a new one",
                            row.status,
                            self.mode()
                        ),
                    });
                }
                if let Some(v) = patch.level {
                    req.level = v;
                }
                if let Some(v) = patch.title {
                    req.title = v;
                }
                if let Some(v) = patch.text {
                    req.text = Some(v);
                }
                if let Some(v) = patch.fields {
                    req.fields = v;
                }
                if let Some(v) = patch.links {
                    req.links = v;
                }
                if req.mention.is_some() && req.level != layout::Level::Critical {
                    // A resolved alert stops mentioning people.
                    req.mention = None;
                }
                check(&req)?;
                let now = shared_db::now();
                with_conn!(&mut *c, |c| diesel::update(slack_messages::table.find(&row.id))
                    .set((
                        slack_messages::level.eq(req.level.as_str()),
                        slack_messages::title.eq(req.title.trim()),
                        slack_messages::request.eq(serde_json::to_string(&req).unwrap_or_default()),
                        slack_messages::updated_at.eq(now),
                    ))
                    .execute(c)
                    .await)?;
                if sent.contains(&row.status.as_str()) {
                    let job = NewJob::new(UPDATE_QUEUE, &serde_json::json!({ "message_id": row.id }))?
                        .ordering_key(format!("slack:{}", row.channel))
                        .max_attempts(12);
                    jobs::enqueue(c, job).await?;
                }
                record(
                    c,
                    "slack.changed",
                    &actor,
                    &row.id,
                    serde_json::json!({ "level": req.level.as_str() }),
                )
                .await?;
                Ok(MessageStatus::parse(&row.status).unwrap_or(MessageStatus::Queued))
            })
            .await?;
        self.wake.notify_one();
        Ok(Accepted {
            id: id.to_owned(),
            status,
        })
    }

    /// Delivers a queued message (the `slack.post` job).
    async fn deliver(&self, job: &Job) -> Result<(), JobError> {
        let id = message_id(job)?;
        let Some(notifier) = self.notifier.clone() else {
            // Queued while a transport was configured: kept until one is again.
            return Err(JobError::Defer(Duration::from_secs(60)));
        };
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let Some(row) = find(&mut conn, &id).await.map_err(retry)? else {
            return Err(JobError::Fatal(format!("message {id} is gone")));
        };
        if row.status != MessageStatus::Queued.as_str() {
            return Ok(()); // already delivered by an earlier attempt
        }
        let req = row.request().map_err(|e| JobError::Fatal(e.to_string()))?;
        let mut thread_ts = row.thread_ts.clone();
        if thread_ts.is_none()
            && let Some(parent_id) = req.thread_of.as_deref().filter(|t| !is_slack_ts(t))
        {
            match find(&mut conn, parent_id).await.map_err(retry)? {
                Some(p) if p.ts.is_some() => thread_ts = p.ts,
                Some(p) if p.status == MessageStatus::Queued.as_str() => {
                    return Err(JobError::Defer(Duration::from_secs(1)));
                }
                _ => {
                    let reason = "thread_not_found: the parent message was never posted";
                    self.fail(&mut conn, &row, reason).await.map_err(retry)?;
                    return Err(JobError::Fatal(reason.into()));
                }
            }
        }
        self.pace(&row.channel)?;
        let mention = req.mention.as_deref().and_then(|m| Mention::parse(m).ok());
        let rendered = layout::render(&alert(&req, mention.as_ref(), &row.id, row.created_at));
        match notifier.post(&row.channel, &rendered, thread_ts.as_deref()).await {
            Ok(posted) => {
                let (status, event) = if notifier.captures() {
                    (MessageStatus::Captured, "slack.captured")
                } else {
                    (MessageStatus::Posted, "slack.posted")
                };
                let now = shared_db::now();
                let mut conn = conn;
                let stored = row.clone();
                conn.transaction::<_, NotifyError, _>(async move |c| {
                    with_conn!(&mut *c, |c| diesel::update(slack_messages::table.find(&stored.id))
                        .set((
                            slack_messages::status.eq(status.as_str()),
                            slack_messages::slack_channel.eq(Some(&posted.channel)),
                            slack_messages::ts.eq(Some(&posted.ts)),
                            slack_messages::thread_ts.eq(thread_ts.as_ref()),
                            slack_messages::error.eq(None::<String>),
                            slack_messages::posted_at.eq(Some(now)),
                            slack_messages::updated_at.eq(now),
                        ))
                        .execute(c)
                        .await)?;
                    record(
                        c,
                        event,
                        "system",
                        &stored.id,
                        serde_json::json!({
                            "channel": posted.channel, "ts": posted.ts,
                        }),
                    )
                    .await
                })
                .await
                .map_err(retry)
            }
            Err(e) => self.failed_attempt(&mut conn, &row, job, e).await,
        }
    }

    /// Updates a posted message in Slack (the `slack.update` job).
    async fn deliver_update(&self, job: &Job) -> Result<(), JobError> {
        let id = message_id(job)?;
        let Some(notifier) = self.notifier.clone() else {
            return Err(JobError::Defer(Duration::from_secs(60)));
        };
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let Some(row) = find(&mut conn, &id).await.map_err(retry)? else {
            return Err(JobError::Fatal(format!("message {id} is gone")));
        };
        let (Some(channel), Some(ts)) = (row.slack_channel.clone(), row.ts.clone()) else {
            return Err(JobError::Fatal("the message was never posted".into()));
        };
        let req = row.request().map_err(|e| JobError::Fatal(e.to_string()))?;
        self.pace(&row.channel)?;
        let mention = req.mention.as_deref().and_then(|m| Mention::parse(m).ok());
        let rendered = layout::render(&alert(&req, mention.as_ref(), &row.id, row.created_at));
        match notifier.update(&channel, &ts, &rendered).await {
            Ok(_) => {
                let now = shared_db::now();
                with_conn!(&mut *conn, |c| diesel::update(slack_messages::table.find(&row.id))
                    .set((
                        slack_messages::error.eq(None::<String>),
                        slack_messages::updated_at.eq(now)
                    ))
                    .execute(c)
                    .await)
                .map_err(|e| retry(e.into()))?;
                record(
                    &mut conn,
                    "slack.updated",
                    "system",
                    &row.id,
                    serde_json::json!({ "ts": ts }),
                )
                .await
                .map_err(retry)
            }
            Err(SlackError::Permanent(code)) => {
                note_error(&mut conn, &row.id, &format!("update failed: {code}"))
                    .await
                    .map_err(retry)?;
                Err(JobError::Fatal(code))
            }
            Err(SlackError::RateLimited(wait)) => Err(JobError::Defer(wait.unwrap_or(Duration::from_secs(1)))),
            Err(SlackError::Transient(m)) => Err(JobError::Retry(m)),
        }
    }

    /// Keeps to the per-channel pace: defers the job until the channel's next slot.
    fn pace(&self, channel: &str) -> Result<(), JobError> {
        self.pacing
            .check_key(&channel.to_owned())
            .map_err(|not_until| JobError::Defer(not_until.wait_time_from(self.clock.now())))
    }

    async fn failed_attempt(&self, conn: &mut DbConn, row: &Row, job: &Job, e: SlackError) -> Result<(), JobError> {
        match e {
            SlackError::RateLimited(wait) => {
                // Never dropped: wait as long as Slack asks, without using up attempts.
                let wait = wait.unwrap_or(Duration::from_secs(1));
                note_error(conn, &row.id, "rate limited by Slack; waiting")
                    .await
                    .map_err(retry)?;
                Err(JobError::Defer(wait))
            }
            SlackError::Permanent(code) => {
                self.fail(conn, row, &code).await.map_err(retry)?;
                Err(JobError::Fatal(code))
            }
            SlackError::Transient(m) if job.attempts >= job.max_attempts => {
                self.fail(conn, row, &m).await.map_err(retry)?;
                Err(JobError::Fatal(m))
            }
            SlackError::Transient(m) => {
                note_error(conn, &row.id, &m).await.map_err(retry)?;
                Err(JobError::Retry(m))
            }
        }
    }

    async fn fail(&self, conn: &mut DbConn, row: &Row, reason: &str) -> Result<(), NotifyError> {
        let now = shared_db::now();
        let stored = row.clone();
        let reason = reason.to_owned();
        conn.transaction::<_, NotifyError, _>(async move |c| {
            with_conn!(&mut *c, |c| diesel::update(slack_messages::table.find(&stored.id))
                .set((
                    slack_messages::status.eq(MessageStatus::Failed.as_str()),
                    slack_messages::error.eq(Some(&reason)),
                    slack_messages::updated_at.eq(now),
                ))
                .execute(c)
                .await)?;
            record(
                c,
                "slack.failed",
                "system",
                &stored.id,
                serde_json::json!({ "error": reason }),
            )
            .await
        })
        .await
    }
}

fn conflict_key() -> NotifyError {
    NotifyError::Conflict {
        code: "idempotency_conflict",
        message: "this Idempotency-Key was used with a different request".into(),
    }
}

fn retry(e: NotifyError) -> JobError {
    JobError::Retry(e.to_string())
}

fn message_id(job: &Job) -> Result<String, JobError> {
    let payload: serde_json::Value = job.payload().map_err(|e| JobError::Fatal(e.to_string()))?;
    payload["message_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| JobError::Fatal("no message_id".into()))
}

async fn find(conn: &mut DbConn, id: &str) -> Result<Option<Row>, NotifyError> {
    Ok(with_conn!(conn, |c| slack_messages::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .await
        .optional())?)
}

async fn note_error(conn: &mut DbConn, id: &str, error: &str) -> Result<(), NotifyError> {
    let now = shared_db::now();
    with_conn!(conn, |c| diesel::update(slack_messages::table.find(id))
        .set((
            slack_messages::error.eq(Some(error)),
            slack_messages::updated_at.eq(now)
        ))
        .execute(c)
        .await)?;
    Ok(())
}

async fn record(
    conn: &mut DbConn,
    event_type: &str,
    actor: &str,
    id: &str,
    data: serde_json::Value,
) -> Result<(), NotifyError> {
    Ok(events::record(conn, event_type, actor, &format!("slack_message:{id}"), data).await?)
}

/// Runs `slack.post` jobs.
pub struct PostHandler(pub Arc<SlackService>);

impl JobHandler for PostHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.deliver(job))
    }
}

/// Runs `slack.update` jobs.
pub struct UpdateHandler(pub Arc<SlackService>);

impl JobHandler for UpdateHandler {
    fn handle<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.0.deliver_update(job))
    }
}
