//! Event Bridge licences.
//!
//! With default features this is the licence server's core: keys ([`key`]), the
//! validation rules and lifecycle ([`LicenseService`]) over shared-db, and signing of
//! offline certificates. Built with `default-features = false` it is only the offline
//! verifier other programs embed: [`key::LicenseKey::parse`] to check a typed key and
//! [`cert::Verifier`] to check a signed certificate, with no database and no web framework.

pub mod cert;
pub mod key;

#[cfg(feature = "store")]
pub mod model;
#[cfg(feature = "store")]
mod schema;
#[cfg(feature = "store")]
mod service;

#[cfg(feature = "store")]
pub use service::{LicenseError, LicenseService, parse_duration};
