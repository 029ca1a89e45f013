//! Delivering: the `slack.post` job posts a queued message (in its thread, at its
//! channel's pace, 429s waited out), the `slack.update` job changes a posted one.

use std::time::Duration;

use governor::clock::Clock;
use shared_db::DbConn;
use shared_db::jobs::Job;
use shared_db::worker::JobError;

use super::{SlackService, alert, record};
use crate::jobs::{message_id, retry};
use crate::layout::{self, Mention};
use crate::model::{MessageStatus, NotifyError, is_slack_ts};
use crate::store::{self, Row};
use crate::transport::SlackError;

impl SlackService {
    /// Delivers a queued message (the `slack.post` job).
    pub(crate) async fn deliver(&self, job: &Job) -> Result<(), JobError> {
        let id = message_id(job)?;
        let Some(notifier) = self.notifier.clone() else {
            // Queued while a transport was configured: kept until one is again.
            return Err(JobError::Defer(Duration::from_secs(60)));
        };
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let Some(row) = store::find(&mut conn, &id).await.map_err(retry)? else {
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
            match store::find(&mut conn, parent_id).await.map_err(retry)? {
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
                let stored = &row;
                shared_db::transaction!(conn, NotifyError, |c| {
                    let at = store::Posted {
                        status,
                        channel: &posted.channel,
                        ts: &posted.ts,
                        thread_ts: thread_ts.as_ref(),
                    };
                    store::set_posted(c, &stored.id, at, now).await?;
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
                .map_err(retry)
            }
            Err(e) => self.failed_attempt(&mut conn, &row, job, e).await,
        }
    }

    /// Updates a posted message in Slack (the `slack.update` job).
    pub(crate) async fn deliver_update(&self, job: &Job) -> Result<(), JobError> {
        let id = message_id(job)?;
        let Some(notifier) = self.notifier.clone() else {
            return Err(JobError::Defer(Duration::from_secs(60)));
        };
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let Some(row) = store::find(&mut conn, &id).await.map_err(retry)? else {
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
                store::clear_error(&mut conn, &row.id, now).await.map_err(retry)?;
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
                store::note_error(&mut conn, &row.id, &format!("update failed: {code}"))
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
                store::note_error(conn, &row.id, "rate limited by Slack; waiting")
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
                store::note_error(conn, &row.id, &m).await.map_err(retry)?;
                Err(JobError::Retry(m))
            }
        }
    }

    async fn fail(&self, conn: &mut DbConn, row: &Row, reason: &str) -> Result<(), NotifyError> {
        let now = shared_db::now();
        let stored = row;
        shared_db::transaction!(conn, NotifyError, |c| {
            store::set_failed(c, &stored.id, reason, now).await?;
            record(
                c,
                "slack.failed",
                "system",
                &stored.id,
                serde_json::json!({ "error": reason }),
            )
            .await
        })
    }
}
