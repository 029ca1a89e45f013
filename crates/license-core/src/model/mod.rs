//! Licence types as the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The products licences are issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// The desktop client.
    Client,
    /// The web platform.
    Platform,
}

impl Product {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Client => "client",
            Product::Platform => "platform",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client" => Some(Product::Client),
            "platform" => Some(Product::Platform),
            _ => None,
        }
    }
}

/// A licence's lifecycle state. `revoked` is final. `expired` is shown for an `active`
/// licence whose `expires_at` has passed (it is not stored: renewing makes it `active`
/// again; suspending or revoking it works as for an `active` one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LicenseStatus {
    /// Usable (until it expires).
    Active,
    /// Temporarily unusable; can be reinstated.
    Suspended,
    /// Permanently unusable.
    Revoked,
    /// Was active, and its `expires_at` has passed.
    Expired,
}

impl LicenseStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseStatus::Active => "active",
            LicenseStatus::Suspended => "suspended",
            LicenseStatus::Revoked => "revoked",
            LicenseStatus::Expired => "expired",
        }
    }

    /// Parses a stored name (`expired` is never stored).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(LicenseStatus::Active),
            "suspended" => Some(LicenseStatus::Suspended),
            "revoked" => Some(LicenseStatus::Revoked),
            _ => None,
        }
    }
}

/// The outcome of a validation, checked in this order: `not_found`, `revoked`,
/// `suspended`, `expired` (unless within a grace period or maintained),
/// `product_scope_mismatch`, `no_machine`, `fingerprint_scope_mismatch`,
/// `heartbeat_dead`, `too_many_machines`, `entitlements_missing`, then `grace_period`
/// (valid, expired but within its grace), `expired_maintained` (valid, expired under the
/// `maintain` strategy) or `valid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ValidationCode {
    /// Everything checks out.
    Valid,
    /// No licence has this key (or the key is malformed).
    NotFound,
    /// The licence is suspended.
    Suspended,
    /// The licence is revoked.
    Revoked,
    /// The licence has expired.
    Expired,
    /// The licence requires a machine and none was named.
    NoMachine,
    /// The named fingerprint is not activated on this licence.
    FingerprintScopeMismatch,
    /// More machines are activated than the licence now allows.
    TooManyMachines,
    /// The licence is for another product.
    ProductScopeMismatch,
    /// The licence lacks requested entitlements.
    EntitlementsMissing,
    /// The named machine has not sent a heartbeat within the licence's interval.
    HeartbeatDead,
    /// Valid: the licence has expired, but its grace period has not ended.
    GracePeriod,
    /// Valid: the licence has expired, and its expiry strategy is `maintain`.
    ExpiredMaintained,
}

impl ValidationCode {
    /// Every code, in the order validation checks them (the valid ones last).
    pub const ALL: [ValidationCode; 13] = [
        ValidationCode::NotFound,
        ValidationCode::Revoked,
        ValidationCode::Suspended,
        ValidationCode::Expired,
        ValidationCode::ProductScopeMismatch,
        ValidationCode::NoMachine,
        ValidationCode::FingerprintScopeMismatch,
        ValidationCode::HeartbeatDead,
        ValidationCode::TooManyMachines,
        ValidationCode::EntitlementsMissing,
        ValidationCode::GracePeriod,
        ValidationCode::ExpiredMaintained,
        ValidationCode::Valid,
    ];

    /// Whether the licence may be used: `valid`, `grace_period` or `expired_maintained`.
    pub fn is_valid(self) -> bool {
        matches!(
            self,
            ValidationCode::Valid | ValidationCode::GracePeriod | ValidationCode::ExpiredMaintained
        )
    }

    /// The code as sent (`too_many_machines`).
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationCode::Valid => "valid",
            ValidationCode::NotFound => "not_found",
            ValidationCode::Suspended => "suspended",
            ValidationCode::Revoked => "revoked",
            ValidationCode::Expired => "expired",
            ValidationCode::NoMachine => "no_machine",
            ValidationCode::FingerprintScopeMismatch => "fingerprint_scope_mismatch",
            ValidationCode::TooManyMachines => "too_many_machines",
            ValidationCode::ProductScopeMismatch => "product_scope_mismatch",
            ValidationCode::EntitlementsMissing => "entitlements_missing",
            ValidationCode::HeartbeatDead => "heartbeat_dead",
            ValidationCode::GracePeriod => "grace_period",
            ValidationCode::ExpiredMaintained => "expired_maintained",
        }
    }
}

/// A licence.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct License {
    /// Licence id.
    pub id: String,
    /// The product it is for.
    pub product: Product,
    /// Human name (customer or seat).
    pub name: String,
    /// The owner's email address.
    pub owner_email: String,
    /// Lifecycle state; `expired` once an active licence's `expires_at` has passed.
    pub status: LicenseStatus,
    /// The key's first group: not secret, tells keys apart.
    pub key_prefix: String,
    /// Issued.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last changed.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Expires; `null` for never.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Most machines that may be activated; `null` for unlimited.
    pub max_machines: Option<i32>,
    /// Machines activated now.
    pub machines_count: i64,
    /// Feature names the licence grants (its own and its policy's).
    pub entitlements: Vec<String>,
    /// Free-form JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// When true, validation must name an activated machine's fingerprint.
    pub require_machine: bool,
    /// When set, a machine whose last heartbeat is older than this many seconds is dead.
    pub heartbeat_interval_secs: Option<i32>,
    /// Dead machines are deactivated by the gateway, freeing their seats.
    pub heartbeat_cull: bool,
    /// A culled machine that heartbeats within this many seconds comes back.
    pub heartbeat_resurrection_secs: Option<i32>,
    /// How long the licence still validates after `expires_at` (code `grace_period`).
    pub grace_period: Option<String>,
    /// When the grace period ends (`expires_at` plus `grace_period`).
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// `restrict` or `maintain`: what happens after expiry and grace.
    pub expiry_strategy: ExpiryStrategy,
    /// When `duration` starts: `issue`, `first_activation` or `first_validation`.
    pub expiry_basis: ExpiryBasis,
    /// How long the licence lasts from its `expiry_basis`, when that is not `issue`.
    pub duration: Option<String>,
    /// When the expiry clock started (first activation or validation); `null` until then.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub expiry_started_at: Option<DateTime<Utc>>,
    /// The policy it takes the terms it does not set itself from.
    pub policy_id: Option<String>,
    /// The terms the licence sets itself, overriding its policy's (entitlements add up).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<&'static str>,
    /// Last validation (to the minute).
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub last_validated_at: Option<DateTime<Utc>>,
}

/// A machine activated on a licence.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Machine {
    /// Machine id.
    pub id: String,
    /// Its licence.
    pub license_id: String,
    /// The client's stable fingerprint of the machine (unique per licence).
    pub fingerprint: String,
    /// Display name.
    pub name: Option<String>,
    /// Operating system or platform.
    pub platform: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Activated.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last heartbeat (activation counts as one).
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::option::serialize")]
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

/// A request to issue a licence.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IssueLicense {
    /// The product.
    pub product: Product,
    /// Human name, 1 to 200 characters.
    pub name: String,
    /// The owner's email address.
    pub owner_email: String,
    /// Expiry as a time (RFC 3339). Give this or `duration`, or neither for never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Expiry as a duration from now, such as `365d`, `12h` or `1y`.
    #[serde(default)]
    pub duration: Option<String>,
    /// Most machines; absent for unlimited.
    #[serde(default)]
    pub max_machines: Option<i32>,
    /// Entitlements granted.
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// Free-form JSON object.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Require a machine fingerprint at validation.
    #[serde(default)]
    pub require_machine: bool,
    /// Seconds a machine may go without a heartbeat before it counts as dead.
    #[serde(default)]
    pub heartbeat_interval_secs: Option<i32>,
    /// Deactivate machines that stop sending heartbeats (needs an interval).
    #[serde(default)]
    pub heartbeat_cull: Option<bool>,
    /// Seconds within which a culled machine may come back by sending a heartbeat.
    #[serde(default)]
    pub heartbeat_resurrection_secs: Option<i32>,
    /// How long the licence still validates after it expires, such as `7d`.
    #[serde(default)]
    pub grace_period: Option<String>,
    /// `restrict` or `maintain`.
    #[serde(default)]
    pub expiry_strategy: Option<ExpiryStrategy>,
    /// When `duration` starts: `issue`, `first_activation` or `first_validation`.
    #[serde(default)]
    pub expiry_basis: Option<ExpiryBasis>,
    /// The policy whose terms apply where the licence sets none (same product).
    #[serde(default)]
    pub policy_id: Option<String>,
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
pub(crate) fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a licence; absent fields stay, `null` clears the nullable ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LicensePatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New owner address.
    #[serde(default)]
    pub owner_email: Option<String>,
    /// New expiry; `null` for never.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<DateTime<Utc>>))]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// New machine limit; `null` for unlimited.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i32>))]
    pub max_machines: Option<Option<i32>>,
    /// Replaces the entitlements.
    #[serde(default)]
    pub entitlements: Option<Vec<String>>,
    /// Replaces the metadata.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Require a machine at validation.
    #[serde(default)]
    pub require_machine: Option<bool>,
    /// New heartbeat interval; `null` for the policy's (none without one).
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i32>))]
    pub heartbeat_interval_secs: Option<Option<i32>>,
    /// Cull dead machines; `null` for the policy's.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub heartbeat_cull: Option<Option<bool>>,
    /// Resurrection window in seconds; `null` for the policy's.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i32>))]
    pub heartbeat_resurrection_secs: Option<Option<i32>>,
    /// Grace period such as `7d`; `null` for the policy's.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub grace_period: Option<Option<String>>,
    /// `restrict` or `maintain`; `null` for the policy's.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ExpiryStrategy>))]
    pub expiry_strategy: Option<Option<ExpiryStrategy>>,
    /// The policy; `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub policy_id: Option<Option<String>>,
}

/// How to renew: extend by a duration (from the later of now and the current expiry),
/// or set a date.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Renew {
    /// Extend by this, such as `30d` or `1y`.
    #[serde(default)]
    pub duration: Option<String>,
    /// Or expire at this time.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The public key that verifies certificates.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicKey {
    /// Key id, as in certificates.
    pub kid: String,
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// The 32-byte key, base64url without padding.
    pub public_key: String,
    /// The same key as a PEM SubjectPublicKeyInfo (for OpenSSL and friends).
    pub public_key_pem: String,
    /// Every key whose certificates still verify: the current one first, then earlier
    /// ones kept after a rotation (trust them all; pick by the certificate's `kid`).
    pub keys: Vec<PublishedKey>,
}

/// One published verification key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishedKey {
    /// Key id, as in certificates.
    pub kid: String,
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// The 32-byte key, base64url without padding.
    pub public_key: String,
    /// The same key as a PEM SubjectPublicKeyInfo.
    pub public_key_pem: String,
}

/// Filters for listing licences.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct LicenseFilter {
    /// Only this product.
    pub product: Option<Product>,
    /// Only this status (`active` leaves out expired licences, `expired` finds active
    /// licences whose `expires_at` has passed).
    pub status: Option<LicenseStatus>,
    /// Only this owner.
    pub owner_email: Option<String>,
    /// Only licences expiring before this time.
    pub expires_before: Option<DateTime<Utc>>,
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor` (which keeps its page's order).
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    pub order: Option<shared_db::paging::Order>,
}

/// One page of licences.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicensePage {
    /// Licences, newest first unless `order=asc`.
    pub items: Vec<License>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A page request for a licence's machines.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct MachineQuery {
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One page of a licence's machines.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachinePage {
    /// Machines, newest first.
    pub items: Vec<Machine>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

mod check;
mod error;
mod holder;
mod import;
mod policy;

pub(crate) use check::{
    check_email, check_entitlements, check_fingerprint, check_heartbeat, check_max_machines, check_metadata,
    check_name, check_nonce, check_optional, check_resurrection, duration_secs, future,
};
pub use check::{parse_duration, valid_nonce};
pub use error::LicenseError;
pub(crate) use error::invalid;
pub use holder::{
    ActivateRequest, Checkout, CheckoutRequest, Deactivated, MachineAnswer, MachineRequest, ValidateRequest, Validation,
};
pub(crate) use import::ImportRecord;
pub use import::{IMPORT_FIELDS, ImportFile, ImportFormat, ImportReport, LineError};
pub(crate) use policy::show_secs;
pub use policy::{CreatePolicy, ExpiryBasis, ExpiryStrategy, Policy, PolicyFilter, PolicyPage, PolicyPatch};
