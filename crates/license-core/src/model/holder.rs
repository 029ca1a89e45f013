//! What licence holders send (validate, activate, heartbeat, deactivate, checkout) and
//! what they get back. Their requests carry the licence key: `Debug` never shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{License, Machine, Product, ValidationCode};

/// A validation request, authenticated by the key itself.
#[derive(Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The licence key.
    pub key: String,
    /// This machine's fingerprint.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The product the caller is.
    #[serde(default)]
    pub product: Option<Product>,
    /// Entitlements the caller needs.
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// 1 to 128 printable characters, echoed in the signed answer (see `EB-Signature`).
    #[serde(default)]
    pub nonce: Option<String>,
}

/// A validation outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Validation {
    /// True only for `valid`.
    pub valid: bool,
    /// Why.
    pub code: ValidationCode,
    /// In words.
    pub detail: String,
    /// The licence, when the key matched one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
    /// For `grace_period`: when the grace ends and the licence stops validating.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "shared_db::time::rfc3339_micros::option::serialize"
    )]
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// The request's `nonce`, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// A holder call's machine, with the request's `nonce` echoed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineAnswer {
    /// The machine.
    #[serde(flatten)]
    pub machine: Machine,
    /// The request's `nonce`, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// A deactivation asked for with a `nonce` (without one the answer is 204, no body).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deactivated {
    /// Always true.
    pub deactivated: bool,
    /// The fingerprint that was deactivated.
    pub fingerprint: String,
    /// The request's `nonce`, echoed.
    pub nonce: String,
}

/// Activation of a machine.
#[derive(Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The licence key.
    pub key: String,
    /// The machine's fingerprint (1 to 255 characters).
    pub fingerprint: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Operating system or platform.
    #[serde(default)]
    pub platform: Option<String>,
    /// Host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// 1 to 128 printable characters, echoed in the signed answer (see `EB-Signature`).
    #[serde(default)]
    pub nonce: Option<String>,
}

/// Names a machine of the licence the key opens.
#[derive(Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MachineRequest {
    /// The licence key.
    pub key: String,
    /// The machine's fingerprint.
    pub fingerprint: String,
    /// 1 to 128 printable characters, echoed in the signed answer (see `EB-Signature`).
    #[serde(default)]
    pub nonce: Option<String>,
}

/// A request for an offline certificate.
#[derive(Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The licence key.
    pub key: String,
    /// Bind the certificate to this activated machine.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// How long the certificate stays valid offline (default `30d`, at least `1m`, at
    /// most `366d`).
    #[serde(default)]
    pub ttl: Option<String>,
    /// 1 to 128 printable characters, echoed in the signed answer (see `EB-Signature`).
    #[serde(default)]
    pub nonce: Option<String>,
}

/// A signed certificate.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checkout {
    /// `ebl1.<kid>.<payload>.<signature>`; see the README for the format.
    pub certificate: String,
    /// The signing key's id.
    pub kid: String,
    /// What the certificate states (decoded, for convenience).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: crate::cert::CertificatePayload,
    /// The request's `nonce`, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

// The licence key is the holder's credential: `Debug` never shows it.
impl std::fmt::Debug for ValidateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidateRequest")
            .field("key", &"***")
            .field("fingerprint", &self.fingerprint)
            .field("product", &self.product)
            .field("entitlements", &self.entitlements)
            .finish()
    }
}

impl std::fmt::Debug for ActivateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivateRequest")
            .field("key", &"***")
            .field("fingerprint", &self.fingerprint)
            .field("name", &self.name)
            .field("platform", &self.platform)
            .field("hostname", &self.hostname)
            .finish()
    }
}

impl std::fmt::Debug for MachineRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineRequest")
            .field("key", &"***")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl std::fmt::Debug for CheckoutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutRequest")
            .field("key", &"***")
            .field("fingerprint", &self.fingerprint)
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_licence_key() {
        let key = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY-Z2345-67ABC";
        let shown = [
            format!(
                "{:?}",
                ValidateRequest {
                    key: key.into(),
                    fingerprint: Some("fp".into()),
                    product: None,
                    entitlements: Vec::new(),
                    nonce: None,
                }
            ),
            format!(
                "{:?}",
                MachineRequest {
                    key: key.into(),
                    fingerprint: "fp".into(),
                    nonce: None,
                }
            ),
            format!(
                "{:?}",
                CheckoutRequest {
                    key: key.into(),
                    fingerprint: None,
                    ttl: None,
                    nonce: None,
                }
            ),
            format!(
                "{:?}",
                ActivateRequest {
                    key: key.into(),
                    fingerprint: "fp".into(),
                    name: None,
                    platform: None,
                    hostname: None,
                    nonce: None,
                }
            ),
        ];
        for s in shown {
            assert!(!s.contains(key) && s.contains(r#"key: "***""#), "{s}");
        }
    }
}
