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
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn payload(now: DateTime<Utc>) -> CertificatePayload {
        CertificatePayload {
            license_id: "lic-1".into(),
            product: "client".into(),
            name: "Acme".into(),
            entitlements: vec!["export".into(), "sso".into()],
            license_expires_at: Some(now + chrono::Duration::days(365)),
            fingerprint: Some("machine-a".into()),
            issued_at: now,
            expires_at: now + chrono::Duration::days(30),
            grace_ends_at: None,
            maintained: false,
        }
    }

    #[test]
    fn a_signed_certificate_verifies_and_every_expectation_is_checked() {
        let (signer, _) = Signer::generate().unwrap();
        let now = Utc::now();
        let cert = signer.sign(&payload(now)).unwrap();
        let verifier = Verifier::new()
            .with_base64_key(signer.kid(), &BASE64URL_NOPAD.encode(signer.public_key()))
            .unwrap();
        let ok = Expect {
            product: Some("client"),
            fingerprint: Some("machine-a"),
            entitlements: &["sso"],
        };
        assert_eq!(verifier.verify(&cert, now, ok).unwrap(), payload(now));

        let later = now + chrono::Duration::days(31);
        assert_eq!(
            verifier.verify(&cert, later, ok).unwrap_err(),
            VerifyError::CertificateExpired
        );
        let before = now - chrono::Duration::hours(1);
        assert_eq!(
            verifier.verify(&cert, before, ok).unwrap_err(),
            VerifyError::NotYetValid
        );
        let wrong_product = Expect {
            product: Some("platform"),
            ..ok
        };
        assert_eq!(
            verifier.verify(&cert, now, wrong_product).unwrap_err(),
            VerifyError::ProductMismatch("client".into())
        );
        let other_machine = Expect {
            fingerprint: Some("machine-b"),
            ..ok
        };
        assert_eq!(
            verifier.verify(&cert, now, other_machine).unwrap_err(),
            VerifyError::FingerprintMismatch
        );
        let more = Expect {
            entitlements: &["sso", "audit"],
            ..ok
        };
        assert_eq!(
            verifier.verify(&cert, now, more).unwrap_err(),
            VerifyError::EntitlementsMissing(vec!["audit".into()])
        );

        let mut expired_license = payload(now);
        expired_license.license_expires_at = Some(now - chrono::Duration::seconds(1));
        let cert2 = signer.sign(&expired_license).unwrap();
        assert_eq!(
            verifier.verify(&cert2, now, ok).unwrap_err(),
            VerifyError::LicenseExpired
        );
    }

    #[test]
    fn other_keys_and_malformed_input_are_refused() {
        let (signer, _) = Signer::generate().unwrap();
        let (other, _) = Signer::generate().unwrap();
        let cert = signer.sign(&payload(Utc::now())).unwrap();
        let stranger = Verifier::new().with_key(other.kid(), other.public_key());
        assert_eq!(
            stranger.verify_signature(&cert).unwrap_err(),
            VerifyError::UnknownKey(signer.kid().into())
        );
        let impostor = Verifier::new().with_key(signer.kid(), other.public_key());
        assert_eq!(impostor.verify_signature(&cert).unwrap_err(), VerifyError::BadSignature);
        let verifier = Verifier::new().with_key(signer.kid(), signer.public_key());
        for bad in [
            "",
            "ebl1",
            "ebl1.a.b",
            "ebl2.x.y.z",
            "ebl1.k.p.s.extra",
            "....",
            "ebl1...",
        ] {
            assert!(verifier.verify_signature(bad).is_err(), "{bad}");
        }
        assert!(Verifier::new().with_base64_key("k", "AAAA").is_err());
        // 32 bytes that are no curve point: nothing verifies against them.
        let not_a_point = (2u8..=255)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .unwrap();
        let broken = Verifier::new().with_key(signer.kid(), &not_a_point);
        assert_eq!(broken.verify_signature(&cert).unwrap_err(), VerifyError::BadSignature);
    }

    #[test]
    fn a_signature_with_s_plus_the_group_order_is_refused() {
        // Ed25519's s is taken modulo L = 2^252 + 27742317777372353535851937790883648493;
        // s + L satisfies the same equation, so only a canonical-s check refuses it.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let (signer, _) = Signer::generate().unwrap();
        let verifier = Verifier::new().with_key(signer.kid(), signer.public_key());
        let cert = signer.sign(&payload(Utc::now())).unwrap();
        let (signed, signature) = cert.rsplit_once('.').unwrap();
        let mut sig = BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap();
        let mut carry = 0u16;
        for (i, l) in L.iter().enumerate() {
            let sum = u16::from(sig[32 + i]) + u16::from(*l) + carry;
            sig[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        let malleated = format!("{signed}.{}", BASE64URL_NOPAD.encode(&sig));
        assert!(verifier.verify_signature(&cert).is_ok());
        assert_eq!(
            verifier.verify_signature(&malleated).unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn signed_answers_verify_and_forged_or_replayed_ones_do_not() {
        let (signer, _) = Signer::generate().unwrap();
        let verifier = Verifier::new().with_key(signer.kid(), signer.public_key());
        let body = br#"{"valid":true,"code":"valid","nonce":"n-1"}"#;
        let header = signer.sign_response(body);
        assert!(header.starts_with(&format!("kid={}; sig=", signer.kid())));
        let json = verifier.verify_response(body, &header, Some("n-1")).unwrap();
        assert_eq!(json["valid"], true);
        // Without an expected nonce only the signature is checked.
        verifier.verify_response(body, &header, None).unwrap();
        // A replay: the same signed answer for a request with another nonce.
        assert_eq!(
            verifier.verify_response(body, &header, Some("n-2")).unwrap_err(),
            VerifyError::NonceMismatch
        );
        // A forgery: the body changed by one byte, or signed by another key.
        let forged = br#"{"valid":true,"code":"valid","nonce":"n-2"}"#;
        assert_eq!(
            verifier.verify_response(forged, &header, Some("n-2")).unwrap_err(),
            VerifyError::BadSignature
        );
        let (other, _) = Signer::generate().unwrap();
        let impostor = other.sign_response(body).replace(other.kid(), signer.kid());
        assert_eq!(
            verifier.verify_response(body, &impostor, Some("n-1")).unwrap_err(),
            VerifyError::BadSignature
        );
        // An empty body (204) verifies as null and cannot carry a nonce.
        let empty = signer.sign_response(b"");
        assert_eq!(
            verifier.verify_response(b"", &empty, None).unwrap(),
            serde_json::Value::Null
        );
        assert_eq!(
            verifier.verify_response(b"", &empty, Some("n")).unwrap_err(),
            VerifyError::NonceMismatch
        );
        for bad in ["", "kid=x", "sig=abc", "kid=; sig=", "garbage"] {
            assert!(verifier.verify_response(body, bad, None).is_err(), "{bad}");
        }
        // Parameters in any order, extra ones ignored.
        let sig = header.split("sig=").nth(1).unwrap();
        let reordered = format!("sig={sig}; alg=ed25519; kid={}", signer.kid());
        verifier.verify_response(body, &reordered, Some("n-1")).unwrap();
    }

    #[test]
    fn an_expired_licence_passes_offline_within_its_grace_or_when_maintained() {
        let (signer, _) = Signer::generate().unwrap();
        let verifier = Verifier::new().with_key(signer.kid(), signer.public_key());
        let now = Utc::now();
        let mut p = payload(now);
        p.license_expires_at = Some(now - chrono::Duration::days(1));
        p.grace_ends_at = Some(now + chrono::Duration::days(1));
        let cert = signer.sign(&p).unwrap();
        verifier.verify(&cert, now, Expect::default()).unwrap();
        let after_grace = now + chrono::Duration::days(2);
        assert_eq!(
            verifier.verify(&cert, after_grace, Expect::default()).unwrap_err(),
            VerifyError::LicenseExpired
        );
        p.grace_ends_at = None;
        p.maintained = true;
        let cert = signer.sign(&p).unwrap();
        verifier.verify(&cert, after_grace, Expect::default()).unwrap();
        // Certificates without the new fields (issued before them) read as before.
        let old = r#"{"license_id":"l","product":"client","name":"n","entitlements":[],"license_expires_at":null,"fingerprint":null,"issued_at":"2026-01-01T00:00:00Z","expires_at":"2026-02-01T00:00:00Z"}"#;
        let parsed: CertificatePayload = serde_json::from_str(old).unwrap();
        assert!(!parsed.maintained && parsed.grace_ends_at.is_none());
    }

    #[test]
    fn key_ids_are_stable_for_a_key() {
        let (signer, pkcs8) = Signer::generate().unwrap();
        let again = Signer::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(signer.kid(), again.kid());
        assert_eq!(signer.kid().len(), 10);
    }

    static SIGNER: std::sync::LazyLock<Signer> = std::sync::LazyLock::new(|| Signer::generate().unwrap().0);

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn any_flipped_byte_fails_verification(index in 0usize..10_000, bit in 0u8..8) {
            let now = Utc::now();
            let cert = SIGNER.sign(&payload(now)).unwrap();
            let verifier = Verifier::new().with_key(SIGNER.kid(), SIGNER.public_key());
            let mut bytes = cert.clone().into_bytes();
            let i = index % bytes.len();
            bytes[i] ^= 1 << bit;
            let altered = String::from_utf8_lossy(&bytes).into_owned();
            proptest::prop_assume!(altered != cert);
            proptest::prop_assert!(verifier.verify(&altered, now, Expect::default()).is_err());
        }

        /// Any text a client sends as a certificate is refused, never a panic.
        #[test]
        fn any_text_is_refused_without_panicking(
            text in proptest::prop_oneof![
                "\\PC{0,300}",
                "ebl1\\.[A-Za-z0-9_-]{0,12}\\.[A-Za-z0-9_=.-]{0,200}\\.[A-Za-z0-9_-]{0,100}",
            ]
        ) {
            let now = Utc::now();
            let verifier = Verifier::new().with_key(SIGNER.kid(), SIGNER.public_key());
            proptest::prop_assert!(verifier.verify(&text, now, Expect::default()).is_err());
        }

        /// Even a correctly signed certificate whose payload is not ours (any bytes, or
        /// JSON of another shape) is refused as malformed, never a panic.
        #[test]
        fn signed_payloads_of_any_shape_are_refused_without_panicking(
            payload in proptest::prop_oneof![
                proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                proptest::prelude::Strategy::prop_map(
                    "\\{(\"[a-z_]{1,12}\":(null|true|[0-9]{1,20}|\"[a-z ]{0,20}\"),?){0,8}\\}",
                    String::into_bytes,
                ),
            ]
        ) {
            let signed = format!("{FORMAT}.{}.{}", SIGNER.kid(), BASE64URL_NOPAD.encode(&payload));
            let signature = SIGNER.pair.sign(signed.as_bytes());
            let cert = format!("{signed}.{}", BASE64URL_NOPAD.encode(signature.as_ref()));
            let verifier = Verifier::new().with_key(SIGNER.kid(), SIGNER.public_key());
            let result = verifier.verify_signature(&cert);
            proptest::prop_assert!(matches!(result, Err(VerifyError::Malformed(_))), "{:?}", result);
            proptest::prop_assert!(verifier.verify(&cert, Utc::now(), Expect::default()).is_err());
        }
    }
}
