//! Does the time to refuse a wrong licence key depend on how much of it is right?
//!
//! A licence is issued on MariaDB (SQLite when no server answers), then wrong keys are
//! validated, interleaved: keys sharing none, half, or all but one of the 32 data symbols
//! of the real key (each with valid check symbols, so each reaches the database look-up),
//! beside the real key, in a random order each round. Keys are found by the HMAC digest of the whole key, so a shared
//! prefix should buy nothing. Printed: median and mean per class and the spread of the
//! wrong-key medians (a figure, not a goal asserted in a test). `BENCH_ROUNDS` (default
//! 2,000) sets the validations per class.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use license_core::LicenseService;
use license_core::key::{ALPHABET, LicenseKey};
use license_core::model::{IssueLicense, Product, ValidateRequest};
use shared_db::testing::TestDb;

/// A key whose first `shared` data symbols are the real key's, the rest random, with
/// check symbols that make it well formed (found by trying all 32^3 of them).
fn sharing(real: &LicenseKey, shared: usize) -> LicenseKey {
    let compact: Vec<u8> = real.as_str().bytes().filter(|b| *b != b'-').collect();
    loop {
        let mut data = compact[..32].to_vec();
        for symbol in data.iter_mut().skip(shared) {
            *symbol = ALPHABET[rand::random_range(0..32)];
        }
        if data == compact[..32] {
            continue;
        }
        for c in 0..32 * 32 * 32 {
            let check = [ALPHABET[c / 1024], ALPHABET[(c / 32) % 32], ALPHABET[c % 32]];
            let candidate = [data.as_slice(), check.as_slice()].concat();
            if let Ok(key) = LicenseKey::parse(std::str::from_utf8(&candidate).unwrap()) {
                return key;
            }
        }
    }
}

/// The request as the API reads it: the fields not named here take their defaults.
fn licence(name: &str) -> IssueLicense {
    let body = serde_json::json!({"product": Product::Client, "name": name, "owner_email": "timing@example.com"});
    serde_json::from_value(body).unwrap()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len() as u32
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let (db, backend) = match TestDb::mysql().await {
        Some(db) => (db, "MariaDB"),
        None => (TestDb::sqlite().await, "SQLite"),
    };
    let service = LicenseService::new(
        db.pool.clone(),
        shared_db::KeyRing::new(b"timing-secret-0123456789abcdef01", &[]),
        None,
    )
    .unwrap();
    let (_, real) = service.issue(licence("timing"), "bench").await.unwrap();
    // Other licences, so the index is not a single row.
    for i in 0..200 {
        service.issue(licence(&format!("filler {i}")), "bench").await.unwrap();
    }

    let classes: Vec<(&str, Vec<LicenseKey>)> = vec![
        ("wrong, 0 of 32 right", (0..64).map(|_| sharing(&real, 0)).collect()),
        ("wrong, 16 of 32 right", (0..64).map(|_| sharing(&real, 16)).collect()),
        ("wrong, 31 of 32 right", (0..64).map(|_| sharing(&real, 31)).collect()),
        ("the real key", vec![real.clone()]),
    ];
    let mut timings: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); classes.len()];
    for round in 0..rounds + 200 {
        // A fresh random order each round, so no class always follows the same one.
        let mut order: Vec<usize> = (0..classes.len()).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rand::rng());
        for i in order {
            let keys = &classes[i].1;
            let req = ValidateRequest {
                key: keys[round % keys.len()].as_str().to_owned(),
                fingerprint: None,
                product: None,
                entitlements: Vec::new(),
                nonce: None,
            };
            let started = Instant::now();
            let result = service.validate(&req).await.unwrap();
            let took = started.elapsed();
            assert_eq!(result.valid, i == classes.len() - 1);
            if round >= 200 {
                timings[i].push(took);
            }
        }
    }

    println!("key_timing ({backend}, {rounds} validations per class, interleaved)");
    println!("{:<24} {:>12} {:>12}", "class", "median", "mean");
    let mut wrong_medians = Vec::new();
    for ((name, _), t) in classes.iter().zip(timings.iter_mut()) {
        let m = median(t);
        if name.starts_with("wrong") {
            wrong_medians.push(m);
        }
        println!(
            "{name:<24} {:>9.1} µs {:>9.1} µs",
            m.as_secs_f64() * 1e6,
            mean(t).as_secs_f64() * 1e6
        );
    }
    let lo = wrong_medians.iter().min().unwrap().as_secs_f64();
    let hi = wrong_medians.iter().max().unwrap().as_secs_f64();
    println!(
        "spread of the wrong-key medians: {:.1}% (how much a right prefix changes the time to refuse)",
        (hi - lo) / lo * 100.0
    );
}
