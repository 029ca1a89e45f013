//! Policies: reusable licence terms, and the terms a licence ends up with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Product, double_option};

/// What happens once a licence's `expires_at` (and any grace period) has passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExpiryStrategy {
    /// Validation answers `expired` (the default).
    #[default]
    Restrict,
    /// Validation keeps answering valid, with code `expired_maintained` (a perpetual
    /// fallback licence: keep using what was bought).
    Maintain,
}

impl ExpiryStrategy {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryStrategy::Restrict => "restrict",
            ExpiryStrategy::Maintain => "maintain",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "restrict" => Some(ExpiryStrategy::Restrict),
            "maintain" => Some(ExpiryStrategy::Maintain),
            _ => None,
        }
    }
}

/// When a licence's `duration` starts to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExpiryBasis {
    /// At issue (the default).
    #[default]
    Issue,
    /// At the first machine activation (trials that start at first use).
    FirstActivation,
    /// At the first validation (or checkout).
    FirstValidation,
}

impl ExpiryBasis {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryBasis::Issue => "issue",
            ExpiryBasis::FirstActivation => "first_activation",
            ExpiryBasis::FirstValidation => "first_validation",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "issue" => Some(ExpiryBasis::Issue),
            "first_activation" => Some(ExpiryBasis::FirstActivation),
            "first_validation" => Some(ExpiryBasis::FirstValidation),
            _ => None,
        }
    }
}

/// A policy: terms shared by the licences that name it. A licence takes every term it
/// does not set itself from its policy when it is read, so changing a policy changes
/// its licences at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    /// Policy id.
    pub id: String,
    /// The product its licences are for.
    pub product: Product,
    /// Human name, such as `Pro`.
    pub name: String,
    /// Most machines per licence; `null` for unlimited.
    pub max_machines: Option<i32>,
    /// Validation must name an activated machine.
    pub require_machine: bool,
    /// A machine silent for longer than this many seconds is dead.
    pub heartbeat_interval_secs: Option<i32>,
    /// Dead machines are deactivated by the gateway, freeing their seats.
    pub heartbeat_cull: bool,
    /// A culled machine that heartbeats within this many seconds of being culled comes
    /// back (if a seat is free); `null`: it does not.
    pub heartbeat_resurrection_secs: Option<i32>,
    /// How long an expired licence still validates (code `grace_period`), such as `7d`.
    pub grace_period: Option<String>,
    /// `restrict` or `maintain`.
    pub expiry_strategy: ExpiryStrategy,
    /// When `duration` starts: `issue`, `first_activation` or `first_validation`.
    pub expiry_basis: ExpiryBasis,
    /// How long its licences last, such as `365d` (from `expiry_basis`); `null`: they
    /// do not expire unless issued with an expiry.
    pub duration: Option<String>,
    /// Entitlements every licence of the policy has (a licence's own are added).
    pub entitlements: Vec<String>,
    /// Free-form JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Licences that name it.
    pub licenses_count: i64,
    /// Created.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last changed.
    #[serde(serialize_with = "shared_db::time::rfc3339_micros::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// A request to create a policy.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePolicy {
    /// The product.
    pub product: Product,
    /// Human name, 1 to 200 characters.
    pub name: String,
    /// Most machines per licence; absent for unlimited.
    #[serde(default)]
    pub max_machines: Option<i32>,
    /// Require a machine fingerprint at validation.
    #[serde(default)]
    pub require_machine: bool,
    /// Seconds (10 to 31536000) a machine may go without a heartbeat.
    #[serde(default)]
    pub heartbeat_interval_secs: Option<i32>,
    /// Deactivate dead machines (needs `heartbeat_interval_secs`).
    #[serde(default)]
    pub heartbeat_cull: bool,
    /// Seconds (1 to 31536000) within which a culled machine may come back.
    #[serde(default)]
    pub heartbeat_resurrection_secs: Option<i32>,
    /// Grace after expiry, such as `7d`.
    #[serde(default)]
    pub grace_period: Option<String>,
    /// `restrict` (default) or `maintain`.
    #[serde(default)]
    pub expiry_strategy: ExpiryStrategy,
    /// `issue` (default), `first_activation` or `first_validation` (these need `duration`).
    #[serde(default)]
    pub expiry_basis: ExpiryBasis,
    /// Licence length, such as `365d`.
    #[serde(default)]
    pub duration: Option<String>,
    /// Entitlements granted.
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// Free-form JSON object.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Changes to a policy; absent fields stay, `null` clears the nullable ones. The product
/// cannot change (its licences are for it).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New machine limit; `null` for unlimited.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i32>))]
    pub max_machines: Option<Option<i32>>,
    /// Require a machine at validation.
    #[serde(default)]
    pub require_machine: Option<bool>,
    /// New heartbeat interval; `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i32>))]
    pub heartbeat_interval_secs: Option<Option<i32>>,
    /// Deactivate dead machines.
    #[serde(default)]
    pub heartbeat_cull: Option<bool>,
    /// New resurrection window; `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i32>))]
    pub heartbeat_resurrection_secs: Option<Option<i32>>,
    /// New grace period; `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub grace_period: Option<Option<String>>,
    /// `restrict` or `maintain`.
    #[serde(default)]
    pub expiry_strategy: Option<ExpiryStrategy>,
    /// `issue`, `first_activation` or `first_validation`.
    #[serde(default)]
    pub expiry_basis: Option<ExpiryBasis>,
    /// New licence length; `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub duration: Option<Option<String>>,
    /// Replaces the entitlements.
    #[serde(default)]
    pub entitlements: Option<Vec<String>>,
    /// Replaces the metadata.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Filters for listing policies.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PolicyFilter {
    /// Only this product.
    pub product: Option<Product>,
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One page of policies.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyPage {
    /// Policies, newest first.
    pub items: Vec<Policy>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A duration as the API shows it and takes it back: in the largest of days, hours,
/// minutes or seconds that divides it (`365d`, `36h`, `90m`, `45s`).
pub(crate) fn show_secs(secs: Option<i64>) -> Option<String> {
    let s = secs?;
    Some(
        [(86_400, "d"), (3_600, "h"), (60, "m")]
            .into_iter()
            .find(|(unit, _)| s % unit == 0)
            .map_or_else(|| format!("{s}s"), |(unit, sym)| format!("{}{sym}", s / unit)),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn durations_show_in_the_largest_unit_that_divides_them() {
        for (secs, shown) in [
            (31_536_000, "365d"),
            (129_600, "36h"),
            (5_400, "90m"),
            (45, "45s"),
            (86_401, "86401s"),
        ] {
            assert_eq!(super::show_secs(Some(secs)).as_deref(), Some(shown));
            let back = crate::model::parse_duration("d", shown).unwrap().num_seconds();
            assert_eq!(back, secs);
        }
        assert_eq!(super::show_secs(None), None);
    }
}
