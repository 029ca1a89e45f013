//! Slack messages: accepted (stored and queued in one transaction), delivered through the
//! job queue in per-channel order at Slack's pace, and updated once posted.
//!
//! One file per use case: [`post`] (accepting), [`show`] (one message, lists), [`update`]
//! (changing a message) and [`deliver`] (the `slack.post` and `slack.update` jobs).

mod deliver;
mod post;
mod show;
mod update;

use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::NaiveDateTime;
use governor::clock::DefaultClock;
use governor::{DefaultKeyedRateLimiter, Quota};
use shared_db::{DbConn, DbPool, events};
use tokio::sync::Notify;

use crate::layout::{self, Alert, Mention, Rendered};
use crate::model::{MessageStatus, NotifyError, PostMessage, check};
use crate::transport::{SlackMode, SlackNotifier};

const IDEMPOTENCY_SCOPE: &str = "slack.messages";

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
