//! Event Bridge's bridge: the audit trail turned into deliveries.
//!
//! - Rules: "when an event of type T (matching a filter on its data) happens, post to
//!   Slack and/or send an email template", run from the job queue once per rule and event.
//! - Webhooks: events POSTed to registered URLs, signed (Standard Webhooks), retried for
//!   about a day, every attempt logged; only global unicast addresses reached ([`net`]).
//! - Reminders: licences expiring in 30, 7 and 1 days remind their owners; expiries
//!   become `license.expired` events.

pub mod model;
pub mod net;
mod schema;
mod service;

pub use service::{
    BridgeError, BridgeService, BridgeSettings, REMINDER_TEMPLATE, RULE_QUEUE, RuleHandler, WEBHOOK_QUEUE,
    WebhookHandler, sign, type_matches,
};
