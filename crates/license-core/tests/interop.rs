//! The certificate format as the README documents it, verified by another Ed25519
//! implementation: Python's `cryptography`, with the README's own snippet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use chrono::Utc;
use license_core::cert::{CertificatePayload, Signer};

const SNIPPET: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
certificate, public_key = sys.argv[1], sys.argv[2]
b64 = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
signed, signature = certificate.rsplit(".", 1)
try:
    Ed25519PublicKey.from_public_bytes(b64(public_key)).verify(b64(signature), signed.encode())
except Exception:
    print("BAD SIGNATURE")
    sys.exit(0)
payload = json.loads(b64(signed.split(".")[2]))
print(payload["license_id"], payload["product"], payload["fingerprint"])
"#;

fn python_with_cryptography() -> bool {
    shared_db::testing::python_with("cryptography.hazmat.primitives.asymmetric.ed25519", "interop test")
}

#[test]
fn python_cryptography_verifies_our_certificates_and_rejects_altered_ones() {
    if !python_with_cryptography() {
        return;
    }
    let (signer, _) = Signer::generate().unwrap();
    let now = Utc::now();
    let payload = CertificatePayload {
        license_id: "lic-42".into(),
        product: "platform".into(),
        name: "Ünïcode name".into(),
        entitlements: vec!["sso".into()],
        license_expires_at: None,
        fingerprint: Some("fp-9".into()),
        issued_at: now,
        expires_at: now + chrono::Duration::days(1),
        grace_ends_at: None,
        maintained: false,
    };
    let cert = signer.sign(&payload).unwrap();
    let public_key = data_encoding::BASE64URL_NOPAD.encode(signer.public_key());
    let run = |c: &str| {
        let out = Command::new("python3")
            .args(["-c", SNIPPET, c, &public_key])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(run(&cert), "lic-42 platform fp-9");

    // Swap in another payload under the same signature.
    let mut parts: Vec<&str> = cert.split('.').collect();
    let forged =
        data_encoding::BASE64URL_NOPAD.encode(br#"{"license_id":"lic-43","product":"platform","fingerprint":null}"#);
    parts[2] = &forged;
    assert_eq!(run(&parts.join(".")), "BAD SIGNATURE");
}
