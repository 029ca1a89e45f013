//! Event Bridge email.
//!
//! - [`address`]: mailboxes parsed once (display names, IDN domains, no header injection).
//! - [`template`]: minijinja templates, HTML-escaped, missing variables named.
//! - [`mime`]: the MIME message (alternatives, inline images, attachments) via `mail-builder`.
//! - [`transport`]: the [`Mailer`](transport::Mailer) trait, SES (`SendRawEmail`) and the
//!   development mailbox.
//! - [`sns`]: SES notifications through SNS, signatures verified.
//! - [`MailService`]: the durable outbox on shared-db's job queue, templates,
//!   suppressions and bounce/complaint handling.

pub mod address;
pub mod mime;
pub mod model;
mod schema;
mod service;
pub mod sns;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;

pub use service::{
    MAX_BATCH, MAX_RECIPIENTS, MAX_RECIPIENTS_PER_SEND, MailError, MailService, MailSettings, SEND_QUEUE, SendHandler,
};
