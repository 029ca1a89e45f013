//! Signed holder answers: every answer of validate, activate, deactivate, heartbeat and
//! checkout carries `EB-Signature` over its exact body, echoes the request's `nonce`, and
//! is verified here by our verifier and by an independent Ed25519 implementation
//! (Python's `cryptography`, with the README's snippet); a tampered body or another
//! request's nonce is refused.

use std::process::Command;

use data_encoding::BASE64;
use license_core::cert::VerifyError;

use super::*;
use crate::helpers::send;

/// The README's verification snippet, run as a program: argv is the body (base64), the
/// header, the public keys as JSON `{kid: key}` and the nonce.
const SNIPPET: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

b64 = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def verify_answer(body: bytes, header: str, public_keys: dict, nonce: str) -> dict:
    params = dict(p.strip().split("=", 1) for p in header.split(";"))
    key = Ed25519PublicKey.from_public_bytes(b64(public_keys[params["kid"]]))
    key.verify(b64(params["sig"]), body)  # raises InvalidSignature
    answer = json.loads(body)
    if answer.get("nonce") != nonce:
        raise ValueError("the answer is for another request")
    return answer

body, header, keys, nonce = base64.b64decode(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
try:
    answer = verify_answer(body, header, keys, nonce)
    print("OK", answer.get("code", answer.get("fingerprint", "")))
except Exception as e:
    print("REFUSED", type(e).__name__)
"#;

fn python_with_cryptography() -> bool {
    shared_db::testing::python_with(
        "cryptography.hazmat.primitives.asymmetric.ed25519",
        "signed-answer interop",
    )
}

fn python_verify(body: &[u8], header: &str, keys: &Value, nonce: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", SNIPPET, &BASE64.encode(body), header, &keys.to_string(), nonce])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Our verifier, trusting every published key.
async fn verifier(app: &TestApp) -> (Verifier, Value) {
    let published = app.get_json("/api/v1/licenses/public-key").await;
    let mut v = Verifier::new();
    let mut keys = serde_json::Map::new();
    for k in published["keys"].as_array().unwrap() {
        let (kid, key) = (k["kid"].as_str().unwrap(), k["public_key"].as_str().unwrap());
        v = v.with_base64_key(kid, key).unwrap();
        keys.insert(kid.into(), key.into());
    }
    (v, Value::Object(keys))
}

/// Makes a holder call (`validate`, ...) and returns (status, signature header, body bytes).
async fn call(app: &TestApp, name: &str, body: Value) -> (u16, String, Vec<u8>) {
    let res = holder(app, name, body).await;
    let status = res.status().as_u16();
    let sig = res
        .headers()
        .get("eb-signature")
        .unwrap_or_else(|| panic!("{name} answered {status} unsigned"))
        .to_str()
        .unwrap()
        .to_owned();
    (status, sig, res.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_holder_answer_is_signed_and_echoes_the_nonce() {
    for app in TestApp::each().await {
        let b = app.backend();
        let (lic, key) = issue(&app, client_licence()).await;
        let (verifier, _) = verifier(&app).await;
        let check = |status: u16, sig: &str, body: &[u8], nonce: &str| {
            let json = verifier
                .verify_response(body, sig, Some(nonce))
                .unwrap_or_else(|e| panic!("{b:?} {status}: {e}: {}", String::from_utf8_lossy(body)));
            assert_eq!(json["nonce"], nonce);
            json
        };
        let (s, sig, body) = call(&app, "validate", json!({"key": key, "nonce": "v-1"})).await;
        assert_eq!(check(s, &sig, &body, "v-1")["code"], "valid");
        // (call, key, fingerprint, nonce) answers (status, field of the body, its value)
        let id = lic["id"].as_str().unwrap();
        let unknown = "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ";
        let calls = [
            (
                "activate",
                key.as_str(),
                "pc-1",
                "a-1",
                201,
                "fingerprint",
                json!("pc-1"),
            ),
            ("heartbeat", key.as_str(), "pc-1", "h-1", 200, "license_id", json!(id)),
            ("checkout", key.as_str(), "", "c-1", 200, "certificate", Value::Null),
            // Problems are signed and echo the nonce too: over the limit, an unknown machine,
            // an unknown key, a suspended licence.
            (
                "activate",
                key.as_str(),
                "pc-2",
                "a-2",
                422,
                "code",
                json!("too_many_machines"),
            ),
            (
                "heartbeat",
                key.as_str(),
                "nobody",
                "h-2",
                404,
                "code",
                json!("machine_not_found"),
            ),
            (
                "heartbeat",
                unknown,
                "pc-1",
                "h-3",
                401,
                "code",
                json!("license_key_invalid"),
            ),
            // Deactivation: 200 with a body when a nonce was sent, else 204 signed over nothing.
            (
                "deactivate",
                key.as_str(),
                "pc-1",
                "d-1",
                200,
                "deactivated",
                json!(true),
            ),
        ];
        for (name, key, fingerprint, nonce, status, field, value) in calls {
            if name == "checkout" {
                // No machine: the answer's certificate is checked by its prefix.
                let (s, sig, body) = call(&app, name, json!({"key": key, "nonce": nonce})).await;
                assert!(
                    check(s, &sig, &body, nonce)[field]
                        .as_str()
                        .unwrap()
                        .starts_with("ebl1.")
                );
                continue;
            }
            let (s, sig, body) = call(
                &app,
                name,
                json!({"key": key, "fingerprint": fingerprint, "nonce": nonce}),
            )
            .await;
            assert_eq!(
                (s, &check(s, &sig, &body, nonce)[field]),
                (status, &value),
                "{name} {nonce}"
            );
        }
        let res = holder(&app, "activate", json!({"key": key, "fingerprint": "pc-1"})).await;
        assert_eq!(res.status(), 201);
        let (s, sig, body) = call(&app, "deactivate", json!({"key": key, "fingerprint": "pc-1"})).await;
        assert_eq!((s, body.len()), (204, 0));
        assert_eq!(verifier.verify_response(&body, &sig, None).unwrap(), Value::Null);
        // Without a nonce the answer is signed and carries none.
        let (_, sig, body) = call(&app, "validate", json!({"key": key})).await;
        let json = verifier.verify_response(&body, &sig, None).unwrap();
        assert!(json.get("nonce").is_none(), "{json}");
        // A nonce that is not 1 to 128 printable characters is refused, and not echoed.
        for bad in [String::new(), "x".repeat(129), "a\u{7}b".into()] {
            let (s, sig, body) = call(&app, "validate", json!({"key": key, "nonce": bad})).await;
            let json = verifier.verify_response(&body, &sig, None).unwrap();
            assert_eq!(
                (s, json["field"].as_str(), json.get("nonce")),
                (422, Some("nonce"), None),
                "{json}"
            );
        }
        let long_ok = "한".repeat(128);
        let (s, sig, body) = call(&app, "validate", json!({"key": key, "nonce": long_ok})).await;
        check(s, &sig, &body, &long_ok);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_independent_implementation_verifies_answers_and_refuses_forged_or_replayed_ones() {
    if !python_with_cryptography() {
        return;
    }
    let app = TestApp::spawn().await;
    let (lic, key) = issue(&app, client_licence()).await;
    let (verifier, keys) = verifier(&app).await;
    let (_, sig, body) = call(&app, "validate", json!({"key": key, "nonce": "n-42"})).await;
    assert_eq!(python_verify(&body, &sig, &keys, "n-42"), "OK valid");
    // A local proxy turning a suspended answer into `"valid": true` breaks the signature.
    let id = lic["id"].as_str().unwrap();
    let res = send(&app, Method::POST, &format!("/api/v1/licenses/{id}/suspend")).await;
    assert_eq!(res.status(), 200);
    let (_, sig, body) = call(&app, "validate", json!({"key": key, "nonce": "n-43"})).await;
    assert_eq!(python_verify(&body, &sig, &keys, "n-43"), "OK suspended");
    let forged = String::from_utf8(body.clone())
        .unwrap()
        .replace(r#""valid":false"#, r#""valid":true"#)
        .replace(r#""code":"suspended""#, r#""code":"valid""#);
    assert_ne!(forged.as_bytes(), body.as_slice());
    assert_eq!(
        python_verify(forged.as_bytes(), &sig, &keys, "n-43"),
        "REFUSED InvalidSignature"
    );
    assert_eq!(
        verifier
            .verify_response(forged.as_bytes(), &sig, Some("n-43"))
            .unwrap_err(),
        VerifyError::BadSignature
    );
    // Replaying an old valid answer to a new request: the nonce does not match.
    let (_, old_sig, old_body) = {
        let res = send(&app, Method::POST, &format!("/api/v1/licenses/{id}/reinstate")).await;
        assert_eq!(res.status(), 200);
        call(&app, "validate", json!({"key": key, "nonce": "n-44"})).await
    };
    assert_eq!(python_verify(&old_body, &old_sig, &keys, "n-45"), "REFUSED ValueError");
    assert_eq!(
        verifier.verify_response(&old_body, &old_sig, Some("n-45")).unwrap_err(),
        VerifyError::NonceMismatch
    );
    // A key the client does not trust.
    let stranger = json!({ "someone-else": data_encoding::BASE64URL_NOPAD.encode(&[7u8; 32]) });
    assert_eq!(
        python_verify(&old_body, &old_sig, &stranger, "n-44"),
        "REFUSED KeyError"
    );
}
