//! Event Bridge Slack alerts.
//!
//! - [`layout`]: one Block Kit layout per level, escaped and cut to Slack's limits.
//! - [`transport`]: the [`SlackNotifier`](transport::SlackNotifier) trait, Slack's Web API
//!   through slack-morphism, and a development sink.
//! - [`SlackService`]: messages stored and queued in one transaction, delivered through
//!   shared-db's job queue in per-channel order at Slack's pace, 429s waited out; one file
//!   per use case under `service/`.
//! - [`model`]: what the API shows, the checks of what callers send, [`NotifyError`].
//! - `store`: the rows and every query on them (the only place that touches diesel).
//! - [`jobs`]: the `slack.post` and `slack.update` job handlers.

pub mod jobs;
pub mod layout;
pub mod model;
mod schema;
mod service;
mod store;
pub mod transport;

pub use jobs::{POST_QUEUE, PostHandler, UPDATE_QUEUE, UpdateHandler};
pub use model::NotifyError;
pub use service::SlackService;
