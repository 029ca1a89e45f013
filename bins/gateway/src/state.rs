//! What every handler can reach.

use shared_db::DbPool;

use crate::config::Config;

/// Shared application state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// The database pool.
    pub pool: DbPool,
    /// API key digests and checks.
    pub api_keys: access::AccessService,
    /// The configuration in force.
    pub config: std::sync::Arc<Config>,
    /// Licences.
    pub licenses: license_core::LicenseService,
    /// Limits on licence-holder calls.
    pub holder_limits: std::sync::Arc<crate::ratelimit::HolderLimits>,
    /// Slack messages.
    pub slack: std::sync::Arc<slack_notify::SlackService>,
    /// Email.
    pub mail: std::sync::Arc<mailer::MailService>,
    /// Rules, webhooks and reminders.
    pub bridge: std::sync::Arc<bridge::BridgeService>,
    /// Shared storage.
    pub blobs: std::sync::Arc<blob_store::BlobService>,
    /// The public base URL (`APP_URL`, or this server's own address).
    pub public_url: String,
    /// Cancelled when the server starts shutting down (live streams end then).
    pub stopping: tokio_util::sync::CancellationToken,
}
