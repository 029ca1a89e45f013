//! Event Bridge access: API keys and their scopes, usable without the gateway.
//!
//! - [`AccessService`]: create, list, show and revoke keys, and authenticate a presented
//!   key to a [`Principal`] with its scopes. Only an HMAC digest of each key is stored,
//!   under the key ring's current secret; keys digested under an earlier secret still
//!   work and are re-digested on first use.
//! - [`scopes`]: which scopes exist, which a key's scopes grant, which it may hand on.
//! - [`model`]: the principal, a new key, a key's status, pages, and [`AccessError`].
//! - [`store`]: the rows (the only module that touches diesel).
//! - [`view`]: keys as callers see them (the create request, a listed key, a new key
//!   with its secret, a page), serde and, with `openapi`, utoipa schemas.
//!
//! The gateway only reads the `Authorization` header, asks [`AccessService::authenticate`]
//! and turns an [`AccessError`] into its HTTP answer.

pub mod model;
pub mod scopes;
mod service;
pub mod store;
pub mod view;

pub use model::{AccessError, ApiKeyStatus, IssuedKey, KEY_PREFIX, KeyFilter, KeyPage, Principal, is_expired, status};
pub use service::AccessService;
pub use service::list::{ended, find, list};
pub use store::ApiKeyRow;
