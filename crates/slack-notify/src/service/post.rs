//! Accepting a message: checked, stored and queued in one transaction, remembered under
//! its idempotency key.

use shared_db::DbError;
use shared_db::idempotency::{self, Seen};
use shared_db::jobs::{self, NewJob};

use super::{IDEMPOTENCY_SCOPE, SlackService, record};
use crate::jobs::POST_QUEUE;
use crate::model::{
    MessageStatus, NotifyError, PostMessage, SlackMessage, check, check_channel, conflict_key, invalid, is_slack_ts,
};
use crate::store::{self, Row};

impl SlackService {
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
                let parent = store::find(&mut conn, t)
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
        let stored = &row;
        let saved = shared_db::transaction!(conn, NotifyError, |c| {
            store::insert(c, stored).await?;
            let job = NewJob::new(POST_QUEUE, &serde_json::json!({ "message_id": stored.id }))?
                .ordering_key(format!("slack:{}", stored.channel))
                .max_attempts(12);
            jobs::enqueue(c, job).await?;
            if let Some(key) = idempotency {
                idempotency::remember(c, IDEMPOTENCY_SCOPE, key, &stored.id).await?;
            }
            record(
                c,
                "slack.queued",
                actor,
                &stored.id,
                serde_json::json!({
                    "channel": stored.channel, "level": stored.level,
                }),
            )
            .await
        });
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
}
