//! Delivering: the `email.send` job sends one group of recipients at the account's pace,
//! skipping suppressed addresses, and records the group's end and the message's status.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use serde_json::{Value, json};
use shared_db::DbConn;
use shared_db::jobs::Job;
use shared_db::worker::JobError;

use super::{MailService, limiter, record};
use crate::address::Mailbox;
use crate::jobs::retry;
use crate::model::*;
use crate::store::{self, Delivery};
use crate::transport::{Mailer, SendError};

impl MailService {
    /// Sends one group of recipients (the `email.send` job).
    pub(crate) async fn deliver(&self, job: &Job) -> Result<(), JobError> {
        let payload: Value = job.payload().map_err(|e| JobError::Fatal(e.to_string()))?;
        let Some(delivery_id) = payload["delivery_id"].as_str() else {
            return Err(JobError::Fatal("no delivery_id".into()));
        };
        let Some(mailer) = self.mailer.clone() else {
            // Queued while a transport was configured: kept until one is again.
            return Err(JobError::Defer(Duration::from_secs(60)));
        };
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let delivery = store::find_delivery(&mut conn, delivery_id).await.map_err(retry)?;
        let Some(delivery) = delivery else {
            return Err(JobError::Fatal(format!("delivery {delivery_id} is gone")));
        };
        if matches!(delivery.status.as_str(), "sent" | "captured" | "failed" | "suppressed") {
            return Ok(());
        }
        let message = store::source(&mut conn, &delivery.email_id).await.map_err(retry)?;
        let Some((from, raw)) = message else {
            return Err(JobError::Fatal(format!("email {} is gone", delivery.email_id)));
        };
        let source = Mailbox::parse(&from)
            .map(|m| m.email)
            .map_err(|e| JobError::Fatal(format!("stored sender: {e}")))?;
        let recipients = delivery.recipients();
        let keys: Vec<String> = recipients.iter().map(|r| r.to_ascii_lowercase()).collect();
        let suppressed = store::suppressed_among(&mut conn, &keys).await.map_err(retry)?;
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
                store::note_error(&mut conn, &delivery.email_id, &m)
                    .await
                    .map_err(retry)?;
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
        let d = delivery;
        shared_db::transaction!(conn, MailError, |c| {
            let now = shared_db::now();
            store::mark_delivery_sending(c, &d.id, now).await?;
            let n = store::mark_sending(c, &d.email_id, now).await?;
            if n > 0 {
                record(c, "email.sending", &d.email_id, json!({})).await?;
            }
            Ok(())
        })
    }

    /// Records a delivery's end and the message's resulting status, in one transaction.
    async fn finish(
        &self,
        conn: &mut DbConn,
        delivery: &Delivery,
        outcome: Outcome,
        dropped: &[String],
    ) -> Result<(), MailError> {
        let d = delivery;
        shared_db::transaction!(conn, MailError, |c| {
            let now = shared_db::now();
            // Lock the message row first, so two groups finishing at once see each other.
            store::touch(c, &d.email_id, now).await?;
            let (status, provider_id, error) = match &outcome {
                Outcome::Sent(id, _) => ("sent", Some(id.clone()), None),
                Outcome::Captured(id, _) => ("captured", Some(id.clone()), None),
                Outcome::Failed(m, _) => ("failed", None, Some(m.clone())),
                Outcome::Suppressed => ("suppressed", None, None),
            };
            let suppressed_json = (!dropped.is_empty()).then(|| serde_json::to_string(&dropped).unwrap_or_default());
            let end = store::DeliveryEnd {
                status,
                provider_id: &provider_id,
                error: &error,
                suppressed: &suppressed_json,
            };
            store::end_delivery(c, &d.id, end, now).await?;
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
            let all = store::delivery_statuses(c, &d.email_id).await?;
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
            store::settle(c, &d.email_id, aggregate, &error).await?;
            if let Some(at) = sent_at {
                store::set_sent_at(c, &d.email_id, at).await?;
            }
            Ok(())
        })
    }
}

enum Outcome {
    Sent(String, Vec<String>),
    /// Kept by a transport that delivers nothing (the dev mailbox).
    Captured(String, Vec<String>),
    Failed(String, Vec<String>),
    Suppressed,
}
