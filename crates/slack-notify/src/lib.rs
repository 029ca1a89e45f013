//! Event Bridge Slack alerts.
//!
//! - [`layout`]: one Block Kit layout per level, escaped and cut to Slack's limits.
//! - [`transport`]: the [`SlackNotifier`](transport::SlackNotifier) trait, Slack's Web API
//!   through slack-morphism, and a development sink.
//! - [`SlackService`]: messages stored and queued in one transaction, delivered through
//!   shared-db's job queue in per-channel order at Slack's pace, 429s waited out.

pub mod layout;
pub mod model;
mod schema;
mod service;
pub mod transport;

pub use service::{NotifyError, POST_QUEUE, PostHandler, SlackService, UPDATE_QUEUE, UpdateHandler};
