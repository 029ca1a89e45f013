//! Event Bridge email.
//!
//! - [`address`]: mailboxes parsed once (display names, IDN domains, no header injection).
//! - [`template`]: minijinja templates, HTML-escaped, missing variables named.
//! - [`mime`]: the MIME message (alternatives, inline images, attachments) via `mail-builder`.
//! - [`transport`]: the [`Mailer`](transport::Mailer) trait, SES (`SendRawEmail`) and the
//!   development mailbox.
//! - [`sns`]: SES notifications through SNS, signatures verified.
//! - [`MailService`]: the durable outbox on shared-db's job queue, templates,
//!   suppressions and bounce/complaint handling; one file per use case under `service/`.
//! - [`model`]: what the API shows, the checks of what callers send, [`MailError`].
//! - `store`: the rows and every query on them (the only place that touches diesel).
//! - [`jobs`]: the `email.send` job handler.

pub mod address;
pub mod jobs;
pub mod mime;
pub mod model;
mod schema;
mod service;
pub mod sns;
mod store;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;

pub use jobs::{SEND_QUEUE, SendHandler};
pub use model::{MAX_BATCH, MAX_RECIPIENTS, MAX_RECIPIENTS_PER_SEND, MailError};
pub use service::{MailService, MailSettings};
