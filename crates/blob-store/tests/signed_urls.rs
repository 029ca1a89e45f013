//! The gateway's signed URLs: what they bind, and the URLs of the version before
//! `eb-blob-v2` (moved from `service.rs`; the signer now keys through `shared_db::KeyRing`).
#![allow(clippy::unwrap_used)]

use blob_store::{ObjectKey, SignedRequest, UrlSigner};
use ring::hmac;
use shared_db::KeyRing;

#[test]
fn signatures_bind_method_key_expiry_and_type() {
    let svc = UrlSigner::new(KeyRing::new(b"secret-0123456789", &[]));
    let key = ObjectKey::parse("a/b.bin").unwrap();
    let signed = svc.sign("PUT", "ai", &key, 2_000, "application/octet-stream", Some(4));
    assert_eq!(svc.verify("ai", &key, &signed, 1_000), Ok(()));
    assert_eq!(
        svc.verify("ai", &key, &signed, 2_001),
        Err("the signed URL has expired")
    );
    assert!(svc.verify("web", &key, &signed, 1_000).is_err());
    assert!(
        svc.verify("ai", &ObjectKey::parse("a/c.bin").unwrap(), &signed, 1_000)
            .is_err()
    );
    for tamper in [
        SignedRequest {
            method: "GET".into(),
            ..signed.clone()
        },
        SignedRequest {
            expires: 9_999,
            ..signed.clone()
        },
        SignedRequest {
            content_type: String::new(),
            ..signed.clone()
        },
        SignedRequest {
            content_length: Some(5),
            ..signed.clone()
        },
        SignedRequest {
            content_length: None,
            ..signed.clone()
        },
        // A field's text cannot pass for the next field.
        SignedRequest {
            content_type: "application/octet-stream\n4".into(),
            content_length: None,
            ..signed.clone()
        },
        SignedRequest {
            signature: "00".repeat(32),
            ..signed.clone()
        },
        SignedRequest {
            signature: "zz".into(),
            ..signed.clone()
        },
    ] {
        assert!(svc.verify("ai", &key, &tamper, 1_000).is_err(), "{tamper:?}");
    }
}

/// Signs as the version before `eb-blob-v2` did, byte for byte.
fn pre_v2(secret: &[u8], method: &str, ns: &str, key: &str, expires: i64, content_type: &str) -> SignedRequest {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret),
        format!("{method}\n{ns}\n{key}\n{expires}\n{content_type}").as_bytes(),
    );
    SignedRequest {
        method: method.to_owned(),
        expires,
        content_type: content_type.to_owned(),
        content_length: None,
        signature: data_encoding::HEXLOWER.encode(tag.as_ref()),
    }
}

#[test]
fn pre_v2_signatures_verify_for_get_only() {
    let svc = UrlSigner::new(KeyRing::new(b"secret-0123456789", &[b"older-secret-0123"]));
    let key = ObjectKey::parse("a/b.bin").unwrap();
    let get = pre_v2(b"secret-0123456789", "GET", "ai", "a/b.bin", 2_000, "");
    assert_eq!(svc.verify("ai", &key, &get, 1_000), Ok(()));
    let under_previous = pre_v2(b"older-secret-0123", "GET", "ai", "a/b.bin", 2_000, "");
    assert_eq!(svc.verify("ai", &key, &under_previous, 1_000), Ok(()));
    assert_eq!(svc.verify("ai", &key, &get, 2_001), Err("the signed URL has expired"));
    let put = pre_v2(b"secret-0123456789", "PUT", "ai", "a/b.bin", 2_000, "text/csv");
    let refused = svc.verify("ai", &key, &put, 1_000);
    assert!(refused.is_err_and(|why| why.contains("sign it again")), "{refused:?}");
    assert!(svc.verify("web", &key, &get, 1_000).is_err());
    assert!(
        svc.verify("ai", &ObjectKey::parse("a/c.bin").unwrap(), &get, 1_000)
            .is_err()
    );
    for tamper in [
        SignedRequest {
            method: "PUT".into(),
            ..get.clone()
        },
        SignedRequest {
            expires: 9_999,
            ..get.clone()
        },
        SignedRequest {
            content_type: "text/csv".into(),
            ..get.clone()
        },
        SignedRequest {
            content_length: Some(0),
            ..get.clone()
        },
        SignedRequest {
            signature: "00".repeat(32),
            ..get.clone()
        },
        pre_v2(b"another-secret-99", "GET", "ai", "a/b.bin", 2_000, ""),
    ] {
        assert_eq!(
            svc.verify("ai", &key, &tamper, 1_000),
            Err("bad signature"),
            "{tamper:?}"
        );
    }
}

/// URLs signed before the signer moved to the key ring (a hand-written HMAC-SHA256 under
/// the secret, or an earlier one) still verify, byte for byte the same signature.
#[test]
fn signatures_are_those_minted_before_the_key_ring() {
    let minted_before = |secret: &[u8]| {
        let signed = serde_json::json!(["eb-blob-v2", "PUT", "ai", "a/b.bin", 2_000, "text/csv", 4]).to_string();
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), signed.as_bytes());
        SignedRequest {
            method: "PUT".into(),
            expires: 2_000,
            content_type: "text/csv".into(),
            content_length: Some(4),
            signature: data_encoding::HEXLOWER.encode(tag.as_ref()),
        }
    };
    let svc = UrlSigner::new(KeyRing::new(b"secret-0123456789", &[b"older-secret-0123"]));
    let key = ObjectKey::parse("a/b.bin").unwrap();
    let current = minted_before(b"secret-0123456789");
    assert_eq!(svc.sign("PUT", "ai", &key, 2_000, "text/csv", Some(4)), current);
    assert_eq!(svc.verify("ai", &key, &current, 1_000), Ok(()));
    assert_eq!(
        svc.verify("ai", &key, &minted_before(b"older-secret-0123"), 1_000),
        Ok(())
    );
    assert_eq!(
        svc.verify("ai", &key, &minted_before(b"another-secret-99"), 1_000),
        Err("bad signature")
    );
}
