//! SES notifications through SNS: verified, confirmed, and turned into statuses and
//! suppressions, each SNS message once.

use serde_json::{Value, json};
use shared_db::idempotency::{self, Owner, Seen};
use shared_db::{DbConn, events};

use super::{MailService, SNS_SCOPE};
use crate::address::Mailbox;
use crate::model::*;
use crate::sns::SnsError;
use crate::store;

impl MailService {
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
        let (topic, kind) = (&msg.topic_arn, &msg.kind);
        let recorded = shared_db::transaction!(conn, MailError, |c| {
            idempotency::remember(c, SNS_SCOPE, sns_key(&key), &key.chars().take(36).collect::<String>()).await?;
            match &notification {
                Some(n) => apply_notification(c, n).await,
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
        });
        match recorded {
            Ok(()) => Ok(outcome(result)),
            Err(MailError::Db(e)) if e.is_unique_violation() => Ok(outcome("duplicate")),
            Err(e) => Err(e),
        }
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
        store::email_of_provider(c, &provider_id).await?
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
                    store::suppress(
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
                store::suppress(
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
        store::advance(c, id, from, status).await?;
    }
    Ok(())
}
