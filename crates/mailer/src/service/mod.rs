//! The outbox: messages checked, rendered and built into MIME when accepted, stored with
//! their delivery jobs in one transaction, sent through the job queue at the account's
//! pace, and followed up by SES's bounce, complaint and delivery notifications.
//!
//! One file per use case: [`send`] (accepting one message or a batch, with [`prepare`]
//! checking and building each), [`show`] (one message, its MIME, lists), [`templates`],
//! [`suppressions`], [`sns`] (SES notifications) and [`deliver`] (the `email.send` job).

mod deliver;
mod prepare;
mod send;
mod show;
mod sns;
mod suppressions;
mod templates;

use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use governor::DefaultDirectRateLimiter;
use governor::Quota as Gcra;
use governor::clock::DefaultClock;
use serde_json::Value;
use shared_db::idempotency::{self, Seen};
use shared_db::{DbConn, DbError, DbPool, events};
use tokio::sync::Notify;

use crate::address::Mailbox;
use crate::model::*;
use crate::sns::SnsVerifier;
use crate::transport::{MailMode, Mailer};

const IDEMPOTENCY_SCOPE: &str = "emails";
const BATCH_SCOPE: &str = "emails.batch";
const SNS_SCOPE: &str = "sns";

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
}

/// What an idempotency key says about a request (always new without a key).
async fn seen(conn: &mut DbConn, scope: &str, key: Option<idempotency::Key<'_>>) -> Result<Seen, DbError> {
    match key {
        Some(k) => idempotency::check(conn, scope, k).await,
        None => Ok(Seen::New),
    }
}

async fn record(c: &mut DbConn, event_type: &str, email_id: &str, data: Value) -> Result<(), MailError> {
    Ok(events::record(c, event_type, "system", &format!("email:{email_id}"), data).await?)
}
