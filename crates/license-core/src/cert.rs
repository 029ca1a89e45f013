//! Signed licence certificates for offline use, and their verifier.
//!
//! A certificate is one line of ASCII:
//!
//! ```text
//! ebl1.<kid>.<payload>.<signature>
//! ```
//!
//! - `ebl1`: format version 1;
//! - `kid`: the id of the signing key (see `GET /api/v1/licenses/public-key`);
//! - `payload`: base64url (no padding) of the UTF-8 JSON [`CertificatePayload`];
//! - `signature`: base64url (no padding) of the 64-byte Ed25519 signature of the ASCII
//!   bytes `ebl1.<kid>.<payload>` (everything before the last dot).
//!
//! Any Ed25519 library verifies it: split at the last `.`, verify the signature over the
//! first part with the published 32-byte public key, then decode the payload and check
//! its `expires_at` (the certificate), `license_expires_at`, `product` and `fingerprint`.

use chrono::{DateTime, Utc};
use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The format tag every certificate starts with.
pub const FORMAT: &str = "ebl1";

/// The header that carries the signature of a licence-holder answer:
/// `EB-Signature: kid=<kid>; sig=<base64url, no padding>`, an Ed25519 signature by the
/// published licence signing key over the exact bytes of the response body.
pub const SIGNATURE_HEADER: &str = "EB-Signature";

/// What a certificate states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatePayload {
    /// The licence's id.
    pub license_id: String,
    /// `client` or `platform`.
    pub product: String,
    /// The licence's name.
    pub name: String,
    /// Entitlements granted.
    pub entitlements: Vec<String>,
    /// When the licence itself expires; `None` for never.
    pub license_expires_at: Option<DateTime<Utc>>,
    /// The machine the certificate is bound to, if any.
    pub fingerprint: Option<String>,
    /// When the certificate was issued.
    pub issued_at: DateTime<Utc>,
    /// When the certificate stops being valid (the offline grace period's end).
    pub expires_at: DateTime<Utc>,
    /// When the licence's grace period after `license_expires_at` ends, if it has one:
    /// until then an expired licence is still accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// The licence stays valid after it expires (expiry strategy `maintain`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintained: bool,
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not of the `ebl1.kid.payload.signature` form, or not decodable.
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    /// Signed by a key this verifier does not know.
    #[error("unknown signing key `{0}`")]
    UnknownKey(String),
    /// The signature does not match: the certificate was altered or forged.
    #[error("bad signature")]
    BadSignature,
    /// Issued in the future (clock skew beyond the allowance).
    #[error("the certificate is not valid yet")]
    NotYetValid,
    /// The certificate's own validity has ended: check out a new one online.
    #[error("the certificate has expired")]
    CertificateExpired,
    /// The licence has expired.
    #[error("the licence has expired")]
    LicenseExpired,
    /// Issued for another product.
    #[error("the certificate is for product `{0}`")]
    ProductMismatch(String),
    /// Bound to another machine (or to none when one was required).
    #[error("the certificate is bound to another machine")]
    FingerprintMismatch,
    /// Lacks entitlements the caller requires.
    #[error("missing entitlements: {0:?}")]
    EntitlementsMissing(Vec<String>),
    /// A signed answer does not carry the nonce the request sent: it answers another
    /// request (a replay).
    #[error("the answer does not echo this request's nonce")]
    NonceMismatch,
}

/// What the embedding program requires of a certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect<'a> {
    /// The product it must be for.
    pub product: Option<&'a str>,
    /// This machine's fingerprint: the certificate must be bound to it.
    pub fingerprint: Option<&'a str>,
    /// Entitlements it must grant.
    pub entitlements: &'a [&'a str],
}

/// Verifies certificates against one or more published public keys.
///
/// Signatures are checked with ed25519-dalek (RFC 8032's cofactorless check, as ring and
/// BoringSSL do it, with a canonical `s` required, so a signature cannot be altered into
/// another valid one) on a key decoded once here rather than per certificate: about 1.5
/// times ring's speed on the same machine (`cargo bench -p bench --bench license_verify`;
/// the AVX2 code is chosen at run time). The keys are the issuer's own, published ones,
/// so `verify_strict`'s extra refusal of small-order keys buys nothing here and costs
/// 15%. Certificates are signed with ring; Ed25519 is one algorithm, so either library
/// verifies the other's signatures.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    /// `None`: bytes that are no Ed25519 public key (nothing verifies against them).
    keys: Vec<(String, Option<VerifyingKey>)>,
}

/// Clock skew tolerated for `issued_at` (seconds).
const SKEW_SECS: i64 = 300;

impl Verifier {
    /// A verifier that knows no key yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the 32-byte Ed25519 public key `public_key` under `kid`.
    pub fn with_key(mut self, kid: &str, public_key: &[u8]) -> Self {
        let key = <&[u8; 32]>::try_from(public_key)
            .ok()
            .and_then(|bytes| VerifyingKey::from_bytes(bytes).ok());
        self.keys.push((kid.to_owned(), key));
        self
    }

    /// Trusts a public key given in base64url, as `GET /api/v1/licenses/public-key` shows it.
    pub fn with_base64_key(self, kid: &str, public_key: &str) -> Result<Self, VerifyError> {
        let bytes = BASE64URL_NOPAD
            .decode(public_key.trim().as_bytes())
            .map_err(|_| VerifyError::Malformed("public key is not base64url"))?;
        if bytes.len() != 32 {
            return Err(VerifyError::Malformed("an Ed25519 public key has 32 bytes"));
        }
        Ok(self.with_key(kid, &bytes))
    }

    /// Checks the signature and returns the payload; does not look at times.
    pub fn verify_signature(&self, certificate: &str) -> Result<CertificatePayload, VerifyError> {
        let certificate = certificate.trim();
        let (signed, signature) = certificate
            .rsplit_once('.')
            .ok_or(VerifyError::Malformed("no signature"))?;
        let mut parts = signed.split('.');
        let (Some(format), Some(kid), Some(payload), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed("expected ebl1.<kid>.<payload>.<signature>"));
        };
        if format != FORMAT {
            return Err(VerifyError::Malformed("unknown certificate format"));
        }
        self.check(kid, signed.as_bytes(), signature)?;
        let payload = BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .map_err(|_| VerifyError::Malformed("payload is not base64url"))?;
        serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed("payload is not the expected JSON"))
    }

    /// Checks a signed licence-holder answer (validate, activate, deactivate, heartbeat,
    /// checkout): `signature_header` (the `EB-Signature` value) must be a trusted key's
    /// signature over exactly `body`, and when the request sent a `nonce` the body must
    /// echo it, so that neither a forged answer nor a replayed one passes. Returns the
    /// body's JSON (`null` for an empty body).
    pub fn verify_response(
        &self,
        body: &[u8],
        signature_header: &str,
        nonce: Option<&str>,
    ) -> Result<serde_json::Value, VerifyError> {
        let (mut kid, mut sig) = (None, None);
        for part in signature_header.split(';') {
            match part.trim().split_once('=') {
                Some(("kid", v)) => kid = Some(v.trim()),
                Some(("sig", v)) => sig = Some(v.trim()),
                _ => {}
            }
        }
        let (Some(kid), Some(sig)) = (kid, sig) else {
            return Err(VerifyError::Malformed("expected kid=<kid>; sig=<signature>"));
        };
        self.check(kid, body, sig)?;
        let json: serde_json::Value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(body).map_err(|_| VerifyError::Malformed("the body is not JSON"))?
        };
        if let Some(nonce) = nonce
            && json.get("nonce").and_then(serde_json::Value::as_str) != Some(nonce)
        {
            return Err(VerifyError::NonceMismatch);
        }
        Ok(json)
    }

    /// Checks `signature` (base64url) over `signed` with the key named `kid`.
    fn check(&self, kid: &str, signed: &[u8], signature: &str) -> Result<(), VerifyError> {
        let key = self
            .keys
            .iter()
            .find(|(k, _)| k == kid)
            .ok_or_else(|| VerifyError::UnknownKey(kid.to_owned()))?;
        let signature = BASE64URL_NOPAD
            .decode(signature.as_bytes())
            .map_err(|_| VerifyError::Malformed("signature is not base64url"))?;
        let signature = Signature::from_slice(&signature).map_err(|_| VerifyError::BadSignature)?;
        key.1
            .as_ref()
            .ok_or(VerifyError::BadSignature)?
            .verify(signed, &signature)
            .map_err(|_| VerifyError::BadSignature)
    }

    /// Full offline check at time `now`: signature, validity window, licence expiry,
    /// product, machine and entitlements, in that order.
    pub fn verify(
        &self,
        certificate: &str,
        now: DateTime<Utc>,
        expect: Expect<'_>,
    ) -> Result<CertificatePayload, VerifyError> {
        let payload = self.verify_signature(certificate)?;
        if payload.issued_at > now + chrono::Duration::seconds(SKEW_SECS) {
            return Err(VerifyError::NotYetValid);
        }
        if payload.expires_at <= now {
            return Err(VerifyError::CertificateExpired);
        }
        if payload.license_expires_at.is_some_and(|t| t <= now)
            && !payload.maintained
            && payload.grace_ends_at.is_none_or(|end| now >= end)
        {
            return Err(VerifyError::LicenseExpired);
        }
        if let Some(product) = expect.product
            && payload.product != product
        {
            return Err(VerifyError::ProductMismatch(payload.product));
        }
        if let Some(fingerprint) = expect.fingerprint
            && payload.fingerprint.as_deref() != Some(fingerprint)
        {
            return Err(VerifyError::FingerprintMismatch);
        }
        let missing: Vec<String> = expect
            .entitlements
            .iter()
            .filter(|e| !payload.entitlements.iter().any(|have| have == *e))
            .map(|e| (*e).to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(VerifyError::EntitlementsMissing(missing));
        }
        Ok(payload)
    }
}

/// The key id of a public key: the first 10 symbols of base32 SHA-256 of its bytes.
pub fn key_id(public_key: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, public_key);
    data_encoding::BASE32_NOPAD.encode(hash.as_ref())[..10].to_ascii_lowercase()
}

/// Signs certificates (server side).
#[cfg(feature = "store")]
pub struct Signer {
    kid: String,
    pair: ring::signature::Ed25519KeyPair,
}

#[cfg(feature = "store")]
impl Signer {
    /// A new random key pair; also returns its PKCS#8 document for storage.
    pub fn generate() -> Result<(Self, Vec<u8>), ring::error::Unspecified> {
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())?;
        let signer = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok((signer, pkcs8.as_ref().to_vec()))
    }

    /// Loads a PKCS#8 Ed25519 key (v1 as OpenSSL writes it, or v2).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ring::error::Unspecified> {
        let pair =
            ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| ring::error::Unspecified)?;
        let kid = key_id(ring::signature::KeyPair::public_key(&pair).as_ref());
        Ok(Self { kid, pair })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        ring::signature::KeyPair::public_key(&self.pair).as_ref()
    }

    /// The [`SIGNATURE_HEADER`] value for an answer whose body is `body`.
    pub fn sign_response(&self, body: &[u8]) -> String {
        let signature = self.pair.sign(body);
        format!("kid={}; sig={}", self.kid, BASE64URL_NOPAD.encode(signature.as_ref()))
    }

    /// Signs `payload` into a certificate.
    pub fn sign(&self, payload: &CertificatePayload) -> Result<String, serde_json::Error> {
        let json = serde_json::to_vec(payload)?;
        let signed = format!("{FORMAT}.{}.{}", self.kid, BASE64URL_NOPAD.encode(&json));
        let signature = self.pair.sign(signed.as_bytes());
        Ok(format!("{signed}.{}", BASE64URL_NOPAD.encode(signature.as_ref())))
    }
}

#[cfg(all(test, feature = "store"))]
mod tests;
