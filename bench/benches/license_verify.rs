//! Offline verification of a signed licence certificate (what an embedding program does
//! at start-up). Goal: 20,000 verifications per second per core or more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use license_core::cert::{CertificatePayload, Expect, Signer, Verifier};

const GOAL_PER_SEC: f64 = 20_000.0;

/// A signed certificate, a verifier trusting its key, and the key's bytes.
fn certificate() -> (String, Verifier, Vec<u8>) {
    let (signer, _) = Signer::generate().unwrap();
    let now = Utc::now();
    let payload = CertificatePayload {
        license_id: "01a2222b-ce59-77cf-a2a1-c72b3a561cb9".into(),
        product: "client".into(),
        name: "Acme desktop seats".into(),
        entitlements: vec!["export".into(), "sso".into(), "audit".into()],
        license_expires_at: Some(now + chrono::Duration::days(365)),
        fingerprint: Some("5f2b1c9e4a7d3b8e".into()),
        issued_at: now,
        expires_at: now + chrono::Duration::days(30),
        grace_ends_at: None,
        maintained: false,
    };
    let cert = signer.sign(&payload).unwrap();
    let verifier = Verifier::new().with_key(signer.kid(), signer.public_key());
    (cert, verifier, signer.public_key().to_vec())
}

fn verify(c: &mut Criterion) {
    let (cert, verifier, public_key) = certificate();
    let expect = Expect {
        product: Some("client"),
        fingerprint: Some("5f2b1c9e4a7d3b8e"),
        entitlements: &["sso"],
    };
    let mut group = c.benchmark_group("license_certificate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify", |b| {
        b.iter(|| verifier.verify(black_box(&cert), Utc::now(), expect).unwrap())
    });
    // The floor: the verifier's Ed25519 check alone over the same bytes (ed25519-dalek,
    // key decoded once), and ring's (which decodes the key on every call) beside it.
    let (signed, signature) = cert.rsplit_once('.').unwrap();
    let signature = data_encoding::BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap();
    let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(public_key.as_slice().try_into().unwrap()).unwrap();
    let dalek_signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
    group.bench_function("ed25519_dalek_signature_only", |b| {
        b.iter(|| ed25519_dalek::Verifier::verify(&dalek_key, black_box(signed.as_bytes()), &dalek_signature).unwrap())
    });
    group.bench_function("ring_signature_only", |b| {
        b.iter(|| {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public_key)
                .verify(black_box(signed.as_bytes()), &signature)
                .unwrap()
        })
    });
    group.finish();

    // Signed holder answers (issue 22): what the gateway adds to every validation (sign
    // a typical ~900-byte validation body) and what a client spends checking one.
    let (signer, _) = Signer::generate().unwrap();
    let answer = serde_json::to_vec(&serde_json::json!({
        "valid": true, "code": "valid", "detail": "the licence is valid", "nonce": "3f1c2a9b-5d7e-4c1b-9a2f-0e8d7c6b5a49",
        "license": { "id": "01a2222b-ce59-77cf-a2a1-c72b3a561cb9", "product": "client", "name": "Acme desktop seats",
            "owner_email": "it@acme.example", "status": "active", "key_prefix": "ABCDE", "entitlements": ["export", "sso"],
            "metadata": {"crm_id": 42}, "max_machines": 5, "machines_count": 2, "require_machine": true,
            "heartbeat_interval_secs": 600, "heartbeat_cull": true, "heartbeat_resurrection_secs": 86400,
            "grace_period": "14d", "expiry_strategy": "restrict", "expiry_basis": "issue",
            "created_at": "2026-12-01T00:00:00.000000Z", "updated_at": "2026-12-01T00:00:00.000000Z",
            "expires_at": "2027-12-01T00:00:00.000000Z", "grace_ends_at": "2027-12-15T00:00:00.000000Z" },
    }))
    .unwrap();
    let header = signer.sign_response(&answer);
    let answers = Verifier::new().with_key(signer.kid(), signer.public_key());
    let mut group = c.benchmark_group("license_answer");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_response", |b| b.iter(|| signer.sign_response(black_box(&answer))));
    group.bench_function("verify_response", |b| {
        b.iter(|| {
            answers
                .verify_response(
                    black_box(&answer),
                    &header,
                    Some("3f1c2a9b-5d7e-4c1b-9a2f-0e8d7c6b5a49"),
                )
                .unwrap()
        })
    });
    group.finish();
    let n = 20_000u32;
    let started = Instant::now();
    for _ in 0..n {
        black_box(signer.sign_response(black_box(&answer)));
    }
    let per_sign = started.elapsed() / n;
    println!(
        "license_answer: signing a {}-byte answer takes {:.1} µs on one core ({:.0} signatures/s)",
        answer.len(),
        per_sign.as_secs_f64() * 1e6,
        1.0 / per_sign.as_secs_f64().max(1e-12)
    );

    // One core, plain loop: the figure the goal is stated in.
    let n = 20_000u32;
    let started = Instant::now();
    for _ in 0..n {
        black_box(verifier.verify(black_box(&cert), Utc::now(), expect).unwrap());
    }
    let per_sec = f64::from(n) / started.elapsed().max(Duration::from_nanos(1)).as_secs_f64();
    println!(
        "license_verify: {per_sec:.0} verifications/s on one core; goal {GOAL_PER_SEC:.0}/s; ratio to goal {:.2}",
        per_sec / GOAL_PER_SEC
    );
}

criterion_group!(benches, verify);
criterion_main!(benches);
