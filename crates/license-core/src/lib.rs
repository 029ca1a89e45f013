//! Event Bridge licences.
//!
//! With default features this is the licence server's core: keys ([`key`]), the
//! validation rules and lifecycle ([`LicenseService`]) over shared-db, and signing of
//! offline certificates. Built with `default-features = false` it is only the offline
//! verifier other programs embed: [`key::LicenseKey::parse`] to check a typed key and
//! [`cert::Verifier`] to check a signed certificate, with no database and no web framework.
//!
//! The server's parts: [`model`] (types, input checks, errors), `store` (the tables: the
//! only code that touches diesel) and `service` (one file per use case).

pub mod cert;
pub mod key;

#[cfg(feature = "store")]
pub mod jobs;
#[cfg(feature = "store")]
pub mod model;
#[cfg(feature = "store")]
mod service;
#[cfg(feature = "store")]
mod store;

#[cfg(feature = "store")]
pub use model::{LicenseError, parse_duration};
#[cfg(feature = "store")]
pub use service::{LicenseService, SweepReport};
