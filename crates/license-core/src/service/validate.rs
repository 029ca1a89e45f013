//! Validation: a key checked in the order documented on [`ValidationCode`].

use chrono::NaiveDateTime;

use super::{LicenseService, Lookup, record};
use crate::model::{
    ExpiryBasis, ExpiryStrategy, LicenseError, LicenseStatus, ValidateRequest, Validation, ValidationCode, check_nonce,
};
use crate::store::{self, LicenseRow, MachineRow, Terms};

/// `last_validated_at` is written at most this often per licence.
const VALIDATED_AT_RESOLUTION_SECS: i64 = 60;

impl LicenseService {
    /// Validates a key, in the order documented on [`ValidationCode`]. Never an error
    /// for a bad key: that is a `NOT_FOUND` outcome. A failed validation is recorded as
    /// a `license.validation.failed` event, coalesced per licence and code.
    pub async fn validate(&self, req: &ValidateRequest) -> Result<Validation, LicenseError> {
        let nonce = check_nonce(&req.nonce)?;
        let (mut row, count, policy) = match self.lookup(&req.key).await? {
            Lookup::Found(found) => found,
            Lookup::Unknown(detail) => return Ok(self.not_found(detail, nonce).await),
            Lookup::Malformed(_) => {
                let detail = "the key is malformed (wrong length, symbols or check symbols)".to_owned();
                return Ok(self.not_found(detail, nonce).await);
            }
        };
        let terms = row.terms(policy.as_ref());
        let now = shared_db::now();
        if terms.expiry_basis == ExpiryBasis::FirstValidation {
            self.start_clock(&mut row, &terms, now).await?;
        }
        let machine = match &req.fingerprint {
            Some(f) => self.find_machine(&row.id, f.trim()).await?,
            None => None,
        };
        let (code, detail) = evaluate(&row, &terms, count, machine.as_ref(), req, now);
        let grace_ends_at = match code {
            ValidationCode::GracePeriod => {
                self.note_grace(&row, &terms).await?;
                terms.grace_end(row.expires_at).map(|t| t.and_utc())
            }
            _ => None,
        };
        if !code.is_valid() {
            self.validation_failed(Some(&row.id), code, &detail, req.fingerprint.as_deref())
                .await;
        }
        if row
            .last_validated_at
            .is_none_or(|t| now - t >= chrono::Duration::seconds(VALIDATED_AT_RESOLUTION_SECS))
        {
            let mut conn = self.pool.get().await?;
            shared_db::retrying!(store::set_last_validated(&mut conn, &row.id, now).await)?;
            row.last_validated_at = Some(now);
        }
        Ok(Validation {
            valid: code.is_valid(),
            code,
            detail,
            license: Some(row.into_license(count, policy.as_ref())?),
            grace_ends_at,
            nonce,
        })
    }

    /// The `NOT_FOUND` outcome, recorded (coalesced) as a failed validation.
    async fn not_found(&self, detail: String, nonce: Option<String>) -> Validation {
        self.validation_failed(None, ValidationCode::NotFound, &detail, None)
            .await;
        Validation {
            valid: false,
            code: ValidationCode::NotFound,
            detail,
            license: None,
            grace_ends_at: None,
            nonce,
        }
    }

    /// Starts the expiry clock of a licence whose `duration` runs from its first
    /// activation or validation, if it has not started (once, whoever gets there first:
    /// `license.expiry_started`). `row` is updated to match.
    pub(super) async fn start_clock(
        &self,
        row: &mut LicenseRow,
        terms: &Terms,
        now: NaiveDateTime,
    ) -> Result<(), LicenseError> {
        let Some(duration) = terms.duration_secs else {
            return Ok(());
        };
        if row.expiry_started_at.is_some() || row.expires_at.is_some() || row.status() != LicenseStatus::Active {
            return Ok(());
        }
        let expires_at = now + chrono::Duration::seconds(duration);
        let mut conn = self.pool.get().await?;
        let id = row.id.clone();
        let basis = terms.expiry_basis.as_str();
        let started = shared_db::transaction!(conn, LicenseError, |c| {
            if !store::start_clock(c, &id, now, expires_at).await? {
                return Ok(false);
            }
            let data = serde_json::json!({
                "basis": basis,
                "expires_at": shared_db::time::rfc3339_micros::format(&expires_at),
            });
            record(c, "license.expiry_started", &format!("license:{id}"), &id, data).await?;
            Ok(true)
        })?;
        if started {
            row.expiry_started_at = Some(now);
            row.expires_at = Some(expires_at);
        } else if let Some((fresh, _, _)) = store::find(&mut conn, &id).await? {
            // Another call started it first: answer by its clock.
            row.expiry_started_at = fresh.expiry_started_at;
            row.expires_at = fresh.expires_at;
        }
        Ok(())
    }

    /// Records `license.grace_started` the first time a licence is found in its grace
    /// period (once per expiry: renewing clears the mark).
    async fn note_grace(&self, row: &LicenseRow, terms: &Terms) -> Result<(), LicenseError> {
        if row.grace_started_at.is_some() {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        let now = shared_db::now();
        let id = &row.id;
        let data = serde_json::json!({
            "expires_at": row.expires_at.map(|t| shared_db::time::rfc3339_micros::format(&t)),
            "grace_ends_at": terms.grace_end(row.expires_at).map(|t| shared_db::time::rfc3339_micros::format(&t)),
        });
        shared_db::transaction!(conn, LicenseError, |c| {
            if store::start_grace(c, id, now).await? {
                record(c, "license.grace_started", "system", id, data.clone()).await?;
            }
            Ok(())
        })
    }
}

/// Refuses a licence that is revoked, suspended or expired (past any grace and not
/// maintained) at `now` with its code, the way validation answers (machine rules aside:
/// they concern validation only).
pub(super) fn refuse_unusable(row: &LicenseRow, terms: &Terms, now: NaiveDateTime) -> Result<(), LicenseError> {
    match usable(row, terms, now) {
        Err((code, detail)) => Err(LicenseError::NotValid { code, detail }),
        Ok(_) => Ok(()),
    }
}

/// The status and expiry checks: the code a usable licence passes with (`valid`,
/// `grace_period` or `expired_maintained`), or why it is not usable.
fn usable(row: &LicenseRow, terms: &Terms, now: NaiveDateTime) -> Result<ValidationCode, (ValidationCode, String)> {
    use ValidationCode as C;
    match row.status() {
        LicenseStatus::Revoked => return Err((C::Revoked, "the licence has been revoked".into())),
        LicenseStatus::Suspended => return Err((C::Suspended, "the licence is suspended".into())),
        LicenseStatus::Active | LicenseStatus::Expired => {}
    }
    if row.expires_at.is_none_or(|t| t > now) {
        return Ok(C::Valid);
    }
    if terms.grace_end(row.expires_at).is_some_and(|end| now < end) {
        return Ok(C::GracePeriod);
    }
    if terms.expiry_strategy == ExpiryStrategy::Maintain {
        return Ok(C::ExpiredMaintained);
    }
    Err((C::Expired, "the licence has expired".into()))
}

/// Applies the documented validation order to a licence found by its key.
pub(super) fn evaluate(
    license: &LicenseRow,
    terms: &Terms,
    machines_count: i64,
    machine: Option<&MachineRow>,
    req: &ValidateRequest,
    now: NaiveDateTime,
) -> (ValidationCode, String) {
    use ValidationCode as C;
    let pass = match usable(license, terms, now) {
        Ok(pass) => pass,
        Err(refusal) => return refusal,
    };
    if let Some(product) = req.product
        && product.as_str() != license.product
    {
        return (
            C::ProductScopeMismatch,
            format!("the licence is for product `{}`", license.product),
        );
    }
    match (&req.fingerprint, machine) {
        (None, _) if terms.require_machine => {
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
            if let Some(interval) = terms.heartbeat_interval_secs {
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
    if let Some(max) = terms.max_machines
        && machines_count > i64::from(max)
    {
        return (
            C::TooManyMachines,
            format!("{machines_count} machines are activated; the licence allows {max}"),
        );
    }
    if !req.entitlements.is_empty() {
        let missing: Vec<&str> = req
            .entitlements
            .iter()
            .filter(|e| !terms.entitlements.contains(e))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return (
                C::EntitlementsMissing,
                format!("missing entitlements: {}", missing.join(", ")),
            );
        }
    }
    let detail = match pass {
        C::GracePeriod => "the licence has expired and is in its grace period",
        C::ExpiredMaintained => "the licence has expired; its terms maintain it",
        _ => "the licence is valid",
    };
    (pass, detail.into())
}
