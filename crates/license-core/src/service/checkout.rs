//! Offline certificates: a licence that validates now, signed for a while.

use chrono::{SubsecRound, Utc};

use super::{LicenseService, record};
use crate::cert::CertificatePayload;
use crate::model::{
    Checkout, CheckoutRequest, ExpiryStrategy, LicenseError, ValidateRequest, Validation, ValidationCode, check_nonce,
    invalid, parse_duration,
};

/// Certificate lifetimes.
const DEFAULT_TTL_DAYS: i64 = 30;
const MAX_TTL_DAYS: i64 = 366;

impl LicenseService {
    /// Signs an offline certificate for a licence that validates now (bound to the
    /// machine when a fingerprint is given).
    pub async fn checkout(&self, req: &CheckoutRequest) -> Result<Checkout, LicenseError> {
        let nonce = check_nonce(&req.nonce)?;
        let ttl = match &req.ttl {
            Some(t) => parse_duration("ttl", t)?,
            None => chrono::Duration::days(DEFAULT_TTL_DAYS),
        };
        if ttl > chrono::Duration::days(MAX_TTL_DAYS) || ttl < chrono::Duration::minutes(1) {
            return Err(invalid("ttl", "must be between 1 minute and 366 days"));
        }
        let validation = self
            .validate(&ValidateRequest {
                key: req.key.clone(),
                fingerprint: req.fingerprint.clone(),
                ..ValidateRequest::default()
            })
            .await?;
        let license = match validation {
            Validation {
                code: ValidationCode::NotFound,
                detail,
                ..
            } => return Err(LicenseError::KeyInvalid(detail)),
            Validation {
                valid: true,
                license: Some(l),
                ..
            } => l,
            Validation { code, detail, .. } => return Err(LicenseError::NotValid { code, detail }),
        };
        let now = Utc::now().trunc_subsecs(0);
        let payload = CertificatePayload {
            license_id: license.id.clone(),
            product: license.product.as_str().to_owned(),
            name: license.name.clone(),
            entitlements: license.entitlements.clone(),
            license_expires_at: license.expires_at,
            fingerprint: req.fingerprint.as_ref().map(|f| f.trim().to_owned()),
            issued_at: now,
            expires_at: now + ttl,
            grace_ends_at: license.grace_ends_at,
            maintained: license.expiry_strategy == ExpiryStrategy::Maintain,
        };
        let signer = self.signer().await?;
        let certificate = signer
            .sign(&payload)
            .map_err(|e| LicenseError::Signing(e.to_string()))?;
        let mut conn = self.pool.get().await?;
        shared_db::retrying!(
            record(
                &mut conn,
                "license.checked_out",
                &format!("license:{}", license.id),
                &license.id,
                serde_json::json!({
                    "fingerprint": payload.fingerprint, "expires_at": shared_db::time::rfc3339_micros::format(&payload.expires_at), "kid": signer.kid(),
                }),
            )
            .await
        )?;
        Ok(Checkout {
            certificate,
            kid: signer.kid().to_owned(),
            payload,
            nonce,
        })
    }
}
