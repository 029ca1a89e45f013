//! Licence expiry reminders, and `license.expired` when an expiry passes.

use std::collections::BTreeMap;

use chrono::Utc;
use license_core::model::{LicenseFilter, LicenseStatus};
use mailer::model::{SendEmail, TemplateBody, TemplateRef};
use serde_json::json;
use shared_db::DbConn;
use shared_db::events;
use shared_db::idempotency::Key;
use slack_notify::layout::Level;
use slack_notify::model::PostMessage;

use super::{BRIDGE, BridgeService};
use crate::model::{BridgeError, corrupt};
use crate::store;

/// The built-in reminder template's name (store one with this name to change it).
pub const REMINDER_TEMPLATE: &str = "license-expiry-reminder";

impl BridgeService {
    /// Stores the built-in reminder template unless one with its name exists.
    pub async fn ensure_reminder_template(&self) -> Result<(), BridgeError> {
        if self.mail.get_template(REMINDER_TEMPLATE).await.is_ok() {
            return Ok(());
        }
        let body = TemplateBody {
            subject: "Your {{ license.product }} licence \"{{ license.name }}\" expires in {{ days }} day{% if days != 1 %}s{% endif %}".into(),
            html: Some(
                "<p>Hello,</p><p>The <b>{{ license.product }}</b> licence <b>{{ license.name }}</b> expires on \
                 <b>{{ license.expires_at }}</b> ({{ days }} day{% if days != 1 %}s{% endif %} from now).</p>\
                 <p>Renew it to keep using it without interruption.</p>"
                    .into(),
            ),
            text: Some(
                "Hello,\n\nThe {{ license.product }} licence \"{{ license.name }}\" expires on {{ license.expires_at }} \
                 ({{ days }} day{% if days != 1 %}s{% endif %} from now).\n\nRenew it to keep using it without interruption.\n"
                    .into(),
            ),
            description: Some("Built in: licence expiry reminders (30, 7 and 1 days before)".into()),
        };
        match self.mail.put_template(REMINDER_TEMPLATE, body, "system").await {
            Ok(_) => Ok(()),
            // Another replica stored it first.
            Err(mailer::MailError::Db(e)) if e.is_unique_violation() => Ok(()),
            Err(e) => Err(corrupt(e)),
        }
    }

    /// Sends the reminders that are due and records `license.expired` for licences
    /// whose expiry has passed. Each reminder and each expiry happens once per licence
    /// and expiry date, however often this runs. Returns (reminders, expiries).
    pub async fn run_reminders(&self) -> Result<(usize, usize), BridgeError> {
        let mut days = self.settings.reminder_days.clone();
        days.sort_unstable();
        let horizon = days.last().copied().unwrap_or(0);
        // Channels this gateway cannot use are skipped (reported once at start-up); with
        // neither, reminders wait (unmarked) until one is configured.
        let by_email = self.email_unavailable().is_none();
        let slack_channel = self
            .settings
            .reminder_channel
            .as_deref()
            .filter(|_| self.slack_unavailable().is_none());
        let can_remind = by_email || slack_channel.is_some();
        let now = Utc::now();
        let (mut reminded, mut expired) = (0, 0);
        let mut cursor = None;
        loop {
            let page = self
                .licenses
                .list(&LicenseFilter {
                    // Active ones, and active ones already past their expiry (shown
                    // `expired`); suspended and revoked ones are skipped below.
                    status: None,
                    expires_before: Some(now + chrono::Duration::days(horizon.max(0)) + chrono::Duration::seconds(1)),
                    limit: Some(200),
                    cursor: cursor.take(),
                    ..LicenseFilter::default()
                })
                .await
                .map_err(corrupt)?;
            for lic in &page.items {
                if !matches!(lic.status, LicenseStatus::Active | LicenseStatus::Expired) {
                    continue;
                }
                let Some(expires) = lic.expires_at else { continue };
                let stamp = expires.timestamp();
                let mut conn = self.pool.get().await?;
                if expires <= now {
                    let mark = format!("expired:{}:{stamp}", lic.id);
                    let id = lic.id.clone();
                    let recorded = shared_db::transaction!(conn, BridgeError, |c| {
                        if !store::set_mark(c, &mark).await? {
                            return Ok(false);
                        }
                        events::record(
                            c,
                            "license.expired",
                            "system",
                            &format!("license:{id}"),
                            json!({ "expires_at": shared_db::time::rfc3339_micros::format(&expires) }),
                        )
                        .await?;
                        Ok(true)
                    })?;
                    expired += usize::from(recorded);
                    continue;
                }
                let left = (expires - now).num_seconds() as f64 / 86_400.0;
                // The tightest threshold reached: a licence found with 5 days left gets
                // the 7-day reminder only.
                let Some(&threshold) = days.iter().find(|&&d| left <= d as f64) else {
                    continue;
                };
                let mark = format!("reminder:{}:{threshold}:{stamp}", lic.id);
                let seen = store::has_mark(&mut conn, &mark).await?;
                if seen || !can_remind {
                    continue;
                }
                let days_left = left.ceil() as i64;
                let to = Reach {
                    email: by_email,
                    slack_channel,
                };
                match self
                    .remind(&mut conn, lic, expires, threshold, days_left, &mark, to)
                    .await
                {
                    Ok(sent) => reminded += usize::from(sent),
                    Err(e) => {
                        // One licence's failure (a refused address, say) must not stop the
                        // others: logged, recorded, and tried again on the next pass.
                        tracing::warn!(license = %lic.id, threshold, error = %e, "licence reminder failed");
                        events::record(
                            &mut conn,
                            "license.reminder_failed",
                            "bridge:reminders",
                            &format!("license:{}", lic.id),
                            json!({ "threshold_days": threshold, "reason": e.to_string() }),
                        )
                        .await?;
                    }
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok((reminded, expired))
    }

    /// Sends one licence's reminder (by email and to a Slack channel, as `to` says) and
    /// sets its mark; `false` when another pass set the mark first.
    #[allow(clippy::too_many_arguments)]
    async fn remind(
        &self,
        conn: &mut DbConn,
        lic: &license_core::model::License,
        expires: chrono::DateTime<Utc>,
        threshold: i64,
        days_left: i64,
        mark: &str,
        to: Reach<'_>,
    ) -> Result<bool, BridgeError> {
        let vars = json!({
            "license": {
                "id": lic.id, "name": lic.name, "product": lic.product, "owner_email": lic.owner_email,
                "expires_at": expires.format("%Y-%m-%d %H:%M UTC").to_string(),
            },
            "days": days_left,
        });
        let hash = shared_db::idempotency::request_hash(mark.as_bytes());
        let idem = Key {
            owner: &BRIDGE,
            key: mark,
            hash: &hash,
        };
        let email = SendEmail {
            to: vec![lic.owner_email.clone()],
            template: Some(TemplateRef {
                name: REMINDER_TEMPLATE.into(),
                variables: vars,
            }),
            tags: BTreeMap::from([("reminder".to_owned(), format!("{threshold}d"))]),
            ..SendEmail::default()
        };
        if to.email {
            self.mail
                .submit(email, Some(idem), "bridge:reminders")
                .await
                .map_err(corrupt)?;
        }
        if let Some(channel) = to.slack_channel {
            let msg = PostMessage {
                channel: Some(channel.to_owned()),
                level: Level::Warning,
                title: format!(
                    "Licence \"{}\" expires in {days_left} day{}",
                    lic.name,
                    if days_left == 1 { "" } else { "s" }
                ),
                text: Some(format!(
                    "{} licence for {} expires {}.",
                    lic.product.as_str(),
                    lic.owner_email,
                    expires.format("%Y-%m-%d %H:%M UTC")
                )),
                fields: vec![],
                links: vec![],
                source: Some("licence reminders".into()),
                environment: None,
                thread_of: None,
                mention: None,
            };
            self.slack
                .submit(msg, Some(idem), "bridge:reminders")
                .await
                .map_err(corrupt)?;
        }
        Ok(store::set_mark(conn, mark).await?)
    }
}

/// Where one reminder goes.
#[derive(Clone, Copy)]
struct Reach<'a> {
    /// To the licence owner by email.
    email: bool,
    /// To this Slack channel.
    slack_channel: Option<&'a str>,
}
