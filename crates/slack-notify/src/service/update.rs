//! Changing a message: a queued one is sent with the changes, a delivered one is changed
//! where it went (through the `slack.update` job, in its channel's order).

use shared_db::jobs::{self, NewJob};

use super::{SlackService, record};
use crate::jobs::UPDATE_QUEUE;
use crate::layout;
use crate::model::{Accepted, MessagePatch, MessageStatus, NotifyError, check};
use crate::store;

impl SlackService {
    /// Changes a message: a queued one is sent with the changes; a posted one is updated
    /// in Slack through the queue (after anything queued before it in its channel), a
    /// captured one in the dev sink.
    pub async fn update(&self, id: &str, patch: MessagePatch, actor: &str) -> Result<Accepted, NotifyError> {
        let delivered = self.delivered()?;
        let mut conn = self.pool.get().await?;
        let status = shared_db::transaction!(conn, NotifyError, |c| {
            let row = store::find(c, id).await?.ok_or(NotifyError::NotFound)?;
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
            if let Some(v) = &patch.title {
                req.title = v.clone();
            }
            if let Some(v) = &patch.text {
                req.text = Some(v.clone());
            }
            if let Some(v) = &patch.fields {
                req.fields = v.clone();
            }
            if let Some(v) = &patch.links {
                req.links = v.clone();
            }
            if req.mention.is_some() && req.level != layout::Level::Critical {
                // A resolved alert stops mentioning people.
                req.mention = None;
            }
            check(&req)?;
            let now = shared_db::now();
            store::set_request(c, &row.id, &req, now).await?;
            if sent.contains(&row.status.as_str()) {
                let job = NewJob::new(UPDATE_QUEUE, &serde_json::json!({ "message_id": row.id }))?
                    .ordering_key(format!("slack:{}", row.channel))
                    .max_attempts(12);
                jobs::enqueue(c, job).await?;
            }
            record(
                c,
                "slack.changed",
                actor,
                &row.id,
                serde_json::json!({ "level": req.level.as_str() }),
            )
            .await?;
            Ok(MessageStatus::parse(&row.status).unwrap_or(MessageStatus::Queued))
        })?;
        self.wake.notify_one();
        Ok(Accepted {
            id: id.to_owned(),
            status,
        })
    }
}
