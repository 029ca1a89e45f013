//! Validation: a key checked in the order documented on [`ValidationCode`].

use chrono::NaiveDateTime;

use super::{LicenseService, Lookup};
use crate::model::{LicenseError, LicenseStatus, ValidateRequest, Validation, ValidationCode};
use crate::store::{self, LicenseRow, MachineRow};

/// `last_validated_at` is written at most this often per licence.
const VALIDATED_AT_RESOLUTION_SECS: i64 = 60;

impl LicenseService {
    /// Validates a key, in the order documented on [`ValidationCode`]. Never an error
    /// for a bad key: that is a `NOT_FOUND` outcome.
    pub async fn validate(&self, req: &ValidateRequest) -> Result<Validation, LicenseError> {
        let (row, count) = match self.lookup(&req.key).await? {
            Lookup::Found(found) => found,
            Lookup::Unknown(detail) => return Ok(not_found(detail)),
            Lookup::Malformed(_) => {
                return Ok(not_found(
                    "the key is malformed (wrong length, symbols or check symbols)".into(),
                ));
            }
        };
        let machine = match &req.fingerprint {
            Some(f) => self.find_machine(&row.id, f.trim()).await?,
            None => None,
        };
        let now = shared_db::now();
        let (code, detail) = evaluate(&row, count, machine.as_ref(), req, now);
        let mut row = row;
        if row
            .last_validated_at
            .is_none_or(|t| now - t >= chrono::Duration::seconds(VALIDATED_AT_RESOLUTION_SECS))
        {
            let mut conn = self.pool.get().await?;
            shared_db::retrying!(store::set_last_validated(&mut conn, &row.id, now).await)?;
            row.last_validated_at = Some(now);
        }
        Ok(Validation {
            valid: code == ValidationCode::Valid,
            code,
            detail,
            license: Some(row.into_license(count)?),
        })
    }
}

/// The `NOT_FOUND` outcome.
fn not_found(detail: String) -> Validation {
    Validation {
        valid: false,
        code: ValidationCode::NotFound,
        detail,
        license: None,
    }
}

/// Refuses a licence that is revoked, suspended or expired at `now` with its code, the
/// way validation answers (machine rules aside: they concern validation only).
pub(super) fn refuse_unusable(row: &LicenseRow, now: NaiveDateTime) -> Result<(), LicenseError> {
    let probe = ValidateRequest {
        key: String::new(),
        fingerprint: None,
        product: None,
        entitlements: Vec::new(),
    };
    let unbound = LicenseRow {
        require_machine: false,
        max_machines: None,
        ..row.clone()
    };
    match evaluate(&unbound, 0, None, &probe, now) {
        (code @ (ValidationCode::Revoked | ValidationCode::Suspended | ValidationCode::Expired), detail) => {
            Err(LicenseError::NotValid { code, detail })
        }
        _ => Ok(()),
    }
}

/// Applies the documented validation order to a licence found by its key.
pub(super) fn evaluate(
    license: &LicenseRow,
    machines_count: i64,
    machine: Option<&MachineRow>,
    req: &ValidateRequest,
    now: NaiveDateTime,
) -> (ValidationCode, String) {
    use ValidationCode as C;
    match license.status() {
        LicenseStatus::Revoked => return (C::Revoked, "the licence has been revoked".into()),
        LicenseStatus::Suspended => return (C::Suspended, "the licence is suspended".into()),
        LicenseStatus::Active | LicenseStatus::Expired => {}
    }
    if license.expires_at.is_some_and(|t| t <= now) {
        return (C::Expired, "the licence has expired".into());
    }
    if let Some(product) = req.product
        && product.as_str() != license.product
    {
        return (
            C::ProductScopeMismatch,
            format!("the licence is for product `{}`", license.product),
        );
    }
    match (&req.fingerprint, machine) {
        (None, _) if license.require_machine => {
            return (
                C::NoMachine,
                "the licence requires a machine: send its fingerprint".into(),
            );
        }
        (Some(_), None) => {
            return (
                C::FingerprintScopeMismatch,
                "this fingerprint is not activated on the licence".into(),
            );
        }
        (Some(_), Some(m)) => {
            if let Some(interval) = license.heartbeat_interval_secs {
                let last = m.last_heartbeat_at.unwrap_or(m.created_at);
                if now - last > chrono::Duration::seconds(i64::from(interval)) {
                    return (
                        C::HeartbeatDead,
                        format!("no heartbeat from this machine in the last {interval} seconds"),
                    );
                }
            }
        }
        (None, _) => {}
    }
    if let Some(max) = license.max_machines
        && machines_count > i64::from(max)
    {
        return (
            C::TooManyMachines,
            format!("{machines_count} machines are activated; the licence allows {max}"),
        );
    }
    if !req.entitlements.is_empty() {
        let have: Vec<String> = serde_json::from_str(&license.entitlements).unwrap_or_default();
        let missing: Vec<&str> = req
            .entitlements
            .iter()
            .filter(|e| !have.contains(e))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return (
                C::EntitlementsMissing,
                format!("missing entitlements: {}", missing.join(", ")),
            );
        }
    }
    (C::Valid, "the licence is valid".into())
}
