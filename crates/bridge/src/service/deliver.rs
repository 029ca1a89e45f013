//! Delivering one event to one webhook, signed (Standard Webhooks), every attempt
//! logged.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use ring::hmac;
use serde_json::{Value, json};
use shared_db::events;
use shared_db::jobs::Job;
use shared_db::worker::JobError;

use super::{BridgeService, SEALING_PURPOSE};
use crate::jobs::{retry, targets};
use crate::model::BridgeError;
use crate::net;
use crate::store::{self, DeliveryRow};

impl BridgeService {
    /// Posts one event to one webhook (the `bridge.webhook` job), signed as the
    /// Standard Webhooks specification says, and logs the attempt.
    pub(crate) async fn run_webhook(&self, job: &Job) -> Result<(), JobError> {
        let (hook_id, event_id) = targets(job)?;
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        let hook = match store::webhook(&mut conn, &hook_id).await {
            Ok(h) if h.enabled => h,
            Ok(_) | Err(BridgeError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(retry(e)),
        };
        let Some(event) = store::event(&mut conn, &event_id).await.map_err(|e| retry(e.into()))? else {
            return Err(JobError::Fatal(format!("event {event_id} is gone")));
        };
        drop(conn);
        let (secret, _) = self
            .ring
            .open(SEALING_PURPOSE, &hook.secret_sealed, &hook.id)
            .ok_or_else(|| JobError::Fatal("the webhook secret cannot be opened with this SECRET_KEY".into()))?;
        let body = serde_json::to_vec(&json!({
            "id": event.id, "type": event.event_type, "occurred_at": shared_db::time::rfc3339_micros::format(&event.occurred_at),
            "actor": event.actor, "subject": event.subject,
            "data": serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null),
        }))
        .map_err(|e| JobError::Fatal(e.to_string()))?;
        let timestamp = Utc::now().timestamp();
        let signature = sign(&secret, &event.id, timestamp, &body);
        // Checked again at every delivery: the row may have changed since it was
        // registered, or WEBHOOK_ALLOW_PRIVATE been turned off. The request goes to the
        // URL as checked (its parsed form), and the connector checks the address again.
        let url = match net::check_url(&hook.url, self.settings.allow_internal_webhooks) {
            Ok(url) => url,
            Err(why) => {
                let why = format!("not sent: {why}");
                self.log_attempt(&hook.id, &event.id, job.attempts, &Err(why.clone()), Duration::ZERO)
                    .await?;
                return Err(JobError::Fatal(why));
            }
        };
        let request = hyper::Request::post(url.as_str())
            .header("content-type", "application/json")
            .header("user-agent", concat!("event-bridge/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", event.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", format!("v1,{signature}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| JobError::Fatal(format!("bad request: {e}")))?;
        let started = Instant::now();
        // The whole exchange, answer body included, runs under one timer: a receiver
        // that sends its headers and then trickles the body must not hold a delivery
        // worker (and its renewed lease) for ever.
        let limit = self.settings.webhook_timeout;
        let exchange = async {
            let res = self
                .client
                .request(request)
                .await
                .map_err(|e| net::describe(&e).chars().take(500).collect::<String>())?;
            let status = res.status().as_u16();
            // Read (and bound) the answer so the connection can be reused; what it
            // says does not matter, only that it ends.
            let _ = http_body_util::Limited::new(res.into_body(), 64 * 1024).collect().await;
            Ok::<u16, String>(status)
        };
        let outcome = match tokio::time::timeout(limit, exchange).await {
            Err(_) => Err(format!("timed out after {} ms (no complete answer)", limit.as_millis())),
            Ok(outcome) => outcome,
        };
        self.log_attempt(&hook.id, &event.id, job.attempts, &outcome, started.elapsed())
            .await?;
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        match outcome {
            Ok(s) if (200..300).contains(&s) => Ok(()),
            Ok(410) => {
                // Gone: the receiver asks us to stop.
                store::disable_webhook(&mut conn, &hook.id)
                    .await
                    .map_err(|e| retry(e.into()))?;
                events::record(
                    &mut conn,
                    "webhook.disabled",
                    "system",
                    &format!("webhook:{}", hook.id),
                    json!({"reason": "410 Gone"}),
                )
                .await
                .map_err(|e| retry(e.into()))?;
                Err(JobError::Fatal(
                    "the receiver answered 410 Gone; webhook disabled".into(),
                ))
            }
            Ok(s) => Err(JobError::Retry(format!("the receiver answered {s}"))),
            Err(e) => Err(JobError::Retry(e)),
        }
    }

    /// Adds one attempt to a webhook's delivery log: the receiver's status, or why
    /// there was none.
    async fn log_attempt(
        &self,
        hook_id: &str,
        event_id: &str,
        attempt: i32,
        outcome: &Result<u16, String>,
        took: Duration,
    ) -> Result<(), JobError> {
        let row = DeliveryRow {
            id: shared_db::new_id(),
            webhook_id: hook_id.to_owned(),
            event_id: event_id.to_owned(),
            attempt,
            status_code: outcome.as_ref().ok().map(|s| i32::from(*s)),
            error: outcome.as_ref().err().cloned(),
            duration_ms: took.as_millis() as i64,
            delivered_at: shared_db::now(),
        };
        let mut conn = self.pool.get().await.map_err(|e| retry(e.into()))?;
        store::insert_delivery(&mut conn, &row)
            .await
            .map_err(|e| retry(e.into()))?;
        Ok(())
    }
}

/// `v1` signature of the Standard Webhooks scheme: base64 HMAC-SHA256 over
/// `<id>.<timestamp>.<body>`, keyed by the secret after its `whsec_` prefix.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let raw = std::str::from_utf8(secret)
        .ok()
        .and_then(|s| s.strip_prefix("whsec_"))
        .and_then(|b| data_encoding::BASE64.decode(b.as_bytes()).ok())
        .unwrap_or_else(|| secret.to_vec());
    let key = hmac::Key::new(hmac::HMAC_SHA256, &raw);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{id}.{timestamp}.").as_bytes());
    ctx.update(body);
    data_encoding::BASE64.encode(ctx.sign().as_ref())
}
