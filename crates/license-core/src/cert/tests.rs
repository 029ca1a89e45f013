//! The certificate and answer signatures: round trips, forgeries, rotations.

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
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
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
