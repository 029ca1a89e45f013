//! Signed holder answers: every answer of validate, activate, deactivate, heartbeat and
//! checkout carries `EB-Signature` over its exact body, echoes the request's `nonce`, and
//! is verified here by our verifier and by an independent Ed25519 implementation
//! (Python's `cryptography`, with the README's snippet); a tampered body or another
//! request's nonce is refused.

use std::process::Command;

use data_encoding::BASE64;
use license_core::cert::VerifyError;

use super::*;

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
    let ok = Command::new("python3")
        .args(["-c", "import cryptography.hazmat.primitives.asymmetric.ed25519"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "python3 with the cryptography package is required under CI=true");
        eprintln!("SKIPPED: signed-answer interop: python3 with `cryptography` is not installed");
    }
    ok
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

/// POSTs a holder call and returns (status, signature header, body bytes).
async fn call(app: &TestApp, path: &str, body: Value) -> (u16, String, Vec<u8>) {
    let res = post(app, path, body).await;
    let status = res.status().as_u16();
    let sig = res
        .headers()
        .get("eb-signature")
        .unwrap_or_else(|| panic!("{path} answered {status} unsigned"))
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
        let (s, sig, body) = call(&app, "/api/v1/licenses/validate", json!({"key": key, "nonce": "v-1"})).await;
        assert_eq!(check(s, &sig, &body, "v-1")["code"], "valid");
        let (s, sig, body) = call(
            &app,
            "/api/v1/licenses/activate",
            json!({"key": key, "fingerprint": "pc-1", "nonce": "a-1"}),
        )
        .await;
        assert_eq!(
            (s, check(s, &sig, &body, "a-1")["fingerprint"].as_str()),
            (201, Some("pc-1"))
        );
        let (s, sig, body) = call(
            &app,
            "/api/v1/licenses/heartbeat",
            json!({"key": key, "fingerprint": "pc-1", "nonce": "h-1"}),
        )
        .await;
        assert_eq!(
            (s, check(s, &sig, &body, "h-1")["license_id"].as_str()),
            (200, Some(lic["id"].as_str().unwrap()))
        );
        let (s, sig, body) = call(&app, "/api/v1/licenses/checkout", json!({"key": key, "nonce": "c-1"})).await;
        assert!(
            check(s, &sig, &body, "c-1")["certificate"]
                .as_str()
                .unwrap()
                .starts_with("ebl1.")
        );
        // Problems are signed and echo the nonce too: over the limit, an unknown machine,
        // an unknown key, a suspended licence.
        let (s, sig, body) = call(
            &app,
            "/api/v1/licenses/activate",
            json!({"key": key, "fingerprint": "pc-2", "nonce": "a-2"}),
        )
        .await;
        assert_eq!(
            (s, check(s, &sig, &body, "a-2")["code"].as_str()),
            (422, Some("too_many_machines"))
        );
        let (s, sig, body) = call(
            &app,
            "/api/v1/licenses/heartbeat",
            json!({"key": key, "fingerprint": "nobody", "nonce": "h-2"}),
        )
        .await;
        assert_eq!(
            (s, check(s, &sig, &body, "h-2")["code"].as_str()),
            (404, Some("machine_not_found"))
        );
        let (s, sig, body) = call(
            &app,
            "/api/v1/licenses/heartbeat",
            json!({"key": "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ", "fingerprint": "pc-1", "nonce": "h-3"}),
        )
        .await;
        assert_eq!(
            (s, check(s, &sig, &body, "h-3")["code"].as_str()),
            (401, Some("license_key_invalid"))
        );
        // Deactivation: 200 with a body when a nonce was sent, else 204 signed over nothing.
        let (s, sig, body) = call(
            &app,
            "/api/v1/licenses/deactivate",
            json!({"key": key, "fingerprint": "pc-1", "nonce": "d-1"}),
        )
        .await;
        assert_eq!(
            (s, check(s, &sig, &body, "d-1")["deactivated"].as_bool()),
            (200, Some(true))
        );
        let res = post(
            &app,
            "/api/v1/licenses/activate",
            json!({"key": key, "fingerprint": "pc-1"}),
        )
        .await;
        assert_eq!(res.status(), 201);
        let (s, sig, body) = call(
            &app,
            "/api/v1/licenses/deactivate",
            json!({"key": key, "fingerprint": "pc-1"}),
        )
        .await;
        assert_eq!((s, body.len()), (204, 0));
        assert_eq!(verifier.verify_response(&body, &sig, None).unwrap(), Value::Null);
        // Without a nonce the answer is signed and carries none.
        let (_, sig, body) = call(&app, "/api/v1/licenses/validate", json!({"key": key})).await;
        let json = verifier.verify_response(&body, &sig, None).unwrap();
        assert!(json.get("nonce").is_none(), "{json}");
        // A nonce that is not 1 to 128 printable characters is refused, and not echoed.
        for bad in [String::new(), "x".repeat(129), "a\u{7}b".into()] {
            let (s, sig, body) = call(&app, "/api/v1/licenses/validate", json!({"key": key, "nonce": bad})).await;
            let json = verifier.verify_response(&body, &sig, None).unwrap();
            assert_eq!(
                (s, json["field"].as_str(), json.get("nonce")),
                (422, Some("nonce"), None),
                "{json}"
            );
        }
        let long_ok = "한".repeat(128);
        let (s, sig, body) = call(&app, "/api/v1/licenses/validate", json!({"key": key, "nonce": long_ok})).await;
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
    let (_, sig, body) = call(&app, "/api/v1/licenses/validate", json!({"key": key, "nonce": "n-42"})).await;
    assert_eq!(python_verify(&body, &sig, &keys, "n-42"), "OK valid");
    // A local proxy turning a suspended answer into `"valid": true` breaks the signature.
    let res = app
        .client
        .post(app.url(&format!("/api/v1/licenses/{}/suspend", lic["id"].as_str().unwrap())))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, sig, body) = call(&app, "/api/v1/licenses/validate", json!({"key": key, "nonce": "n-43"})).await;
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
        let res = app
            .client
            .post(app.url(&format!("/api/v1/licenses/{}/reinstate", lic["id"].as_str().unwrap())))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        call(&app, "/api/v1/licenses/validate", json!({"key": key, "nonce": "n-44"})).await
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
