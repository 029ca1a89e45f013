//! Event Bridge's bridge: the audit trail turned into deliveries.
//!
//! - Rules: "when an event of type T (matching a filter on its data) happens, post to
//!   Slack and/or send an email template", run from the job queue once per rule and event.
//! - Webhooks: events POSTed to registered URLs, signed (Standard Webhooks), retried for
//!   about a day, every attempt logged; only global unicast addresses reached ([`net`]).
//! - Reminders: licences expiring in 30, 7 and 1 days remind their owners; expiries
//!   become `license.expired` events.
//!
//! Its parts: [`model`] (types, input checks, errors), `store` (the tables: the only
//! code that touches diesel), `service` (one file per use case) and [`jobs`] (the job
//! handlers and the periodic work, [`jobs::run`]).

pub mod jobs;
pub mod model;
pub mod net;
mod service;
mod store;

pub use jobs::{RuleHandler, WebhookHandler};
pub use model::{BridgeError, type_matches};
pub use service::{BridgeService, BridgeSettings, REMINDER_TEMPLATE, RULE_QUEUE, WEBHOOK_QUEUE, sign};
