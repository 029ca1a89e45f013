//! The licence rules against real databases (SQLite always, MariaDB when reachable).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use license_core::cert::{Expect, Verifier, VerifyError};
use license_core::key::LicenseKey;
use license_core::model::*;
use license_core::{LicenseError, LicenseService};
use shared_db::testing::TestDb;
use shared_db::{events, with_conn};

const SECRET: &[u8] = b"license-test-secret-0123456789ab";

fn issue(product: Product) -> IssueLicense {
    IssueLicense {
        product,
        name: "Acme Corp".into(),
        owner_email: "it@acme.example".into(),
        expires_at: None,
        duration: Some("365d".into()),
        max_machines: Some(2),
        entitlements: vec!["sso".into(), "export".into()],
        metadata: serde_json::Map::new(),
        require_machine: false,
        heartbeat_interval_secs: None,
    }
}

fn validate(key: &LicenseKey) -> ValidateRequest {
    ValidateRequest {
        key: key.as_str().into(),
        fingerprint: None,
        product: None,
        entitlements: vec![],
    }
}

fn activate(key: &LicenseKey, fingerprint: &str) -> ActivateRequest {
    ActivateRequest {
        key: key.as_str().into(),
        fingerprint: fingerprint.into(),
        name: None,
        platform: None,
        hostname: None,
    }
}

async fn services() -> Vec<(TestDb, LicenseService)> {
    let mut out = Vec::new();
    for db in TestDb::each().await {
        let svc = LicenseService::new(db.pool.clone(), SECRET, None).unwrap();
        svc.signer().await.unwrap();
        out.push((db, svc));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_validation_code_in_its_documented_order() {
    use ValidationCode as C;
    for (db, svc) in services().await {
        let b = db.backend();
        let (lic, key) = svc.issue(issue(Product::Client), "test").await.unwrap();
        let code = |r: &Validation| r.code;

        let ok = svc.validate(&validate(&key)).await.unwrap();
        assert!(ok.valid && code(&ok) == C::Valid, "{b}");
        assert!(ok.license.as_ref().unwrap().last_validated_at.is_some());

        // NOT_FOUND: malformed, and well-formed but unknown.
        let mut r = validate(&key);
        r.key = "NOT-A-KEY".into();
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::NotFound);
        let other = LicenseKey::generate().unwrap();
        let unknown = svc.validate(&validate(&other)).await.unwrap();
        assert_eq!((unknown.code, unknown.license.is_none()), (C::NotFound, true));

        // PRODUCT_SCOPE_MISMATCH.
        let mut r = validate(&key);
        r.product = Some(Product::Platform);
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::ProductScopeMismatch);
        r.product = Some(Product::Client);
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::Valid);

        // ENTITLEMENTS_MISSING.
        let mut r = validate(&key);
        r.entitlements = vec!["sso".into(), "audit".into()];
        let v = svc.validate(&r).await.unwrap();
        assert_eq!(code(&v), C::EntitlementsMissing);
        assert!(v.detail.contains("audit"));

        // FINGERPRINT_SCOPE_MISMATCH, then activated: VALID.
        let mut r = validate(&key);
        r.fingerprint = Some("machine-a".into());
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::FingerprintScopeMismatch);
        svc.activate(&activate(&key, "machine-a")).await.unwrap();
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::Valid);

        // NO_MACHINE when required.
        let patch = LicensePatch {
            require_machine: Some(true),
            ..Default::default()
        };
        svc.update(&lic.id, patch, "test").await.unwrap();
        assert_eq!(code(&svc.validate(&validate(&key)).await.unwrap()), C::NoMachine);
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::Valid);

        // TOO_MANY_MACHINES after the limit is lowered below the activated count.
        svc.activate(&activate(&key, "machine-b")).await.unwrap();
        let patch = LicensePatch {
            max_machines: Some(Some(1)),
            ..Default::default()
        };
        svc.update(&lic.id, patch, "test").await.unwrap();
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::TooManyMachines);
        let patch = LicensePatch {
            max_machines: Some(None),
            ..Default::default()
        };
        assert_eq!(svc.update(&lic.id, patch, "test").await.unwrap().max_machines, None);

        // HEARTBEAT_DEAD once the interval passes without one.
        let patch = LicensePatch {
            heartbeat_interval_secs: Some(Some(10)),
            ..Default::default()
        };
        svc.update(&lic.id, patch, "test").await.unwrap();
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::Valid);
        let mut conn = db.pool.get().await.unwrap();
        let old = shared_db::now() - chrono::Duration::seconds(60);
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "UPDATE machines SET last_heartbeat_at = ?"
        )
        .bind::<diesel::sql_types::Timestamp, _>(old)
        .execute(c)
        .await)
        .unwrap();
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::HeartbeatDead);
        let beat = svc
            .heartbeat(&MachineRequest {
                key: key.as_str().into(),
                fingerprint: "machine-a".into(),
            })
            .await
            .unwrap();
        assert!(beat.last_heartbeat_at.unwrap() > old.and_utc());
        assert_eq!(code(&svc.validate(&r).await.unwrap()), C::Valid);

        // EXPIRED beats everything after it; SUSPENDED beats EXPIRED; REVOKED beats SUSPENDED.
        let patch = LicensePatch {
            expires_at: Some(Some(Utc::now() - chrono::Duration::seconds(1))),
            ..Default::default()
        };
        svc.update(&lic.id, patch, "test").await.unwrap();
        let mut wrong = r.clone();
        wrong.product = Some(Product::Platform);
        assert_eq!(code(&svc.validate(&wrong).await.unwrap()), C::Expired);
        svc.suspend(&lic.id, "test").await.unwrap();
        assert_eq!(code(&svc.validate(&wrong).await.unwrap()), C::Suspended);
        svc.revoke(&lic.id, "test").await.unwrap();
        assert_eq!(code(&svc.validate(&wrong).await.unwrap()), C::Revoked);
        drop(conn);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_transitions_and_audit_events() {
    for (db, svc) in services().await {
        let (lic, _key) = svc.issue(issue(Product::Platform), "api_key:admin").await.unwrap();
        assert_eq!(lic.status, LicenseStatus::Active);
        let invalid = |r: Result<License, LicenseError>| matches!(r, Err(LicenseError::InvalidTransition { .. }));

        assert!(
            invalid(svc.reinstate(&lic.id, "a").await),
            "reinstate an active licence"
        );
        assert_eq!(
            svc.suspend(&lic.id, "a").await.unwrap().status,
            LicenseStatus::Suspended
        );
        assert!(invalid(svc.suspend(&lic.id, "a").await), "suspend twice");
        assert_eq!(svc.reinstate(&lic.id, "a").await.unwrap().status, LicenseStatus::Active);

        // Renew: extends from the current expiry; or sets a date.
        let before = svc.get(&lic.id).await.unwrap().expires_at.unwrap();
        let renewed = svc
            .renew(
                &lic.id,
                Renew {
                    duration: Some("30d".into()),
                    expires_at: None,
                },
                "a",
            )
            .await
            .unwrap();
        assert_eq!(renewed.expires_at.unwrap() - before, chrono::Duration::days(30));
        let date = Utc::now() + chrono::Duration::days(3);
        let set = svc
            .renew(
                &lic.id,
                Renew {
                    duration: None,
                    expires_at: Some(date),
                },
                "a",
            )
            .await
            .unwrap();
        assert_eq!(set.expires_at.unwrap().timestamp(), date.timestamp());
        assert!(matches!(
            svc.renew(
                &lic.id,
                Renew {
                    duration: None,
                    expires_at: None
                },
                "a"
            )
            .await,
            Err(LicenseError::Invalid { .. })
        ));
        // An expired licence renewed by a duration counts from now.
        let patch = LicensePatch {
            expires_at: Some(Some(Utc::now() - chrono::Duration::days(10))),
            ..Default::default()
        };
        svc.update(&lic.id, patch, "a").await.unwrap();
        let revived = svc
            .renew(
                &lic.id,
                Renew {
                    duration: Some("1d".into()),
                    expires_at: None,
                },
                "a",
            )
            .await
            .unwrap();
        let from_now = revived.expires_at.unwrap() - Utc::now();
        assert!(from_now > chrono::Duration::hours(23) && from_now <= chrono::Duration::days(1));

        assert_eq!(svc.revoke(&lic.id, "a").await.unwrap().status, LicenseStatus::Revoked);
        assert!(invalid(svc.revoke(&lic.id, "a").await));
        assert!(invalid(svc.reinstate(&lic.id, "a").await), "revoked is final");
        assert!(invalid(svc.suspend(&lic.id, "a").await));
        assert!(invalid(
            svc.renew(
                &lic.id,
                Renew {
                    duration: Some("1d".into()),
                    expires_at: None
                },
                "a"
            )
            .await
        ));
        assert!(matches!(
            svc.suspend("no-such-id", "a").await,
            Err(LicenseError::NotFound)
        ));

        let mut conn = db.pool.get().await.unwrap();
        let trail: Vec<String> = events::for_subject(&mut conn, &format!("license:{}", lic.id))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(
            trail,
            [
                "license.issued",
                "license.suspended",
                "license.reinstated",
                "license.renewed",
                "license.renewed",
                "license.updated",
                "license.renewed",
                "license.revoked",
            ],
            "{}",
            db.backend()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn machines_activate_within_the_limit_even_when_racing() {
    for (db, svc) in services().await {
        let (lic, key) = svc.issue(issue(Product::Client), "t").await.unwrap();
        let m = svc.activate(&activate(&key, "fp-1")).await.unwrap();
        assert_eq!(m.license_id, lic.id);
        assert!(matches!(
            svc.activate(&activate(&key, "fp-1")).await,
            Err(LicenseError::MachineExists)
        ));

        // Eight concurrent activations for the one remaining seat: exactly one wins.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let svc = svc.clone();
            let req = activate(&key, &format!("racer-{i}"));
            tasks.push(tokio::spawn(async move { svc.activate(&req).await }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(LicenseError::NotValid {
                    code: ValidationCode::TooManyMachines,
                    ..
                }) => {}
                Err(e) => panic!("{}: {e:?}", db.backend()),
            }
        }
        assert_eq!(won, 1, "{}", db.backend());
        assert_eq!(svc.get(&lic.id).await.unwrap().machines_count, 2);

        // Deactivate frees a seat; unknown fingerprints are 404s; admins can remove.
        let req = MachineRequest {
            key: key.as_str().into(),
            fingerprint: "fp-1".into(),
        };
        svc.deactivate(&req).await.unwrap();
        assert!(matches!(svc.deactivate(&req).await, Err(LicenseError::MachineNotFound)));
        assert!(matches!(svc.heartbeat(&req).await, Err(LicenseError::MachineNotFound)));
        let again = svc.activate(&activate(&key, "fp-1")).await.unwrap();
        let listed = svc.machines(&lic.id).await.unwrap();
        assert_eq!(listed.len(), 2);
        svc.remove_machine(&lic.id, &again.id, "api_key:x").await.unwrap();
        assert!(matches!(
            svc.remove_machine(&lic.id, &again.id, "x").await,
            Err(LicenseError::MachineNotFound)
        ));

        // A suspended licence activates nothing; a bad key is refused before any look-up.
        svc.suspend(&lic.id, "t").await.unwrap();
        assert!(matches!(
            svc.activate(&activate(&key, "fp-9")).await,
            Err(LicenseError::NotValid {
                code: ValidationCode::Suspended,
                ..
            })
        ));
        let mut bad = activate(&key, "fp-9");
        bad.key = "AAAAA".into();
        assert!(matches!(svc.activate(&bad).await, Err(LicenseError::KeyInvalid(_))));
        assert!(matches!(
            svc.activate(&activate(&key, "  ")).await,
            Err(LicenseError::Invalid {
                field: "fingerprint",
                ..
            })
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn checkout_signs_a_certificate_the_published_key_verifies() {
    for (db, svc) in services().await {
        let (lic, key) = svc.issue(issue(Product::Client), "t").await.unwrap();
        svc.activate(&activate(&key, "fp-1")).await.unwrap();
        let req = CheckoutRequest {
            key: key.as_str().into(),
            fingerprint: Some("fp-1".into()),
            ttl: Some("7d".into()),
        };
        let out = svc.checkout(&req).await.unwrap();
        let pk = svc.public_key().await.unwrap();
        assert_eq!(out.kid, pk.kid);
        assert!(
            pk.public_key_pem
                .starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA")
        );
        let verifier = Verifier::new().with_base64_key(&pk.kid, &pk.public_key).unwrap();
        let now = Utc::now();
        let payload = verifier
            .verify(
                &out.certificate,
                now,
                Expect {
                    product: Some("client"),
                    fingerprint: Some("fp-1"),
                    entitlements: &["sso"],
                },
            )
            .unwrap();
        assert_eq!(payload.license_id, lic.id);
        assert_eq!((payload.expires_at - payload.issued_at).num_days(), 7);
        assert_eq!(
            verifier
                .verify(&out.certificate, now + chrono::Duration::days(8), Expect::default())
                .unwrap_err(),
            VerifyError::CertificateExpired
        );

        // Unbound certificates; refused for unknown machines, bad TTLs and suspended licences.
        let unbound = svc
            .checkout(&CheckoutRequest {
                fingerprint: None,
                ttl: None,
                ..req.clone()
            })
            .await
            .unwrap();
        assert_eq!(unbound.payload.fingerprint, None);
        assert_eq!((unbound.payload.expires_at - unbound.payload.issued_at).num_days(), 30);
        let stranger = CheckoutRequest {
            fingerprint: Some("fp-x".into()),
            ..req.clone()
        };
        assert!(matches!(
            svc.checkout(&stranger).await,
            Err(LicenseError::NotValid {
                code: ValidationCode::FingerprintScopeMismatch,
                ..
            })
        ));
        for ttl in ["2y", "10s", "later"] {
            let r = CheckoutRequest {
                ttl: Some(ttl.into()),
                ..req.clone()
            };
            assert!(
                matches!(svc.checkout(&r).await, Err(LicenseError::Invalid { field: "ttl", .. })),
                "{ttl}"
            );
        }
        svc.suspend(&lic.id, "t").await.unwrap();
        assert!(matches!(
            svc.checkout(&req).await,
            Err(LicenseError::NotValid {
                code: ValidationCode::Suspended,
                ..
            })
        ));

        // The same database and secret give the same signing key to a second instance.
        let again = LicenseService::new(db.pool.clone(), SECRET, None).unwrap();
        assert_eq!(again.public_key().await.unwrap().kid, pk.kid);
        // Another SECRET_KEY cannot open the stored key: a clear start-up error.
        let other = LicenseService::new(db.pool.clone(), b"another-secret-0123456789abcdef", None).unwrap();
        match other.signer().await {
            Err(LicenseError::Signing(m)) => assert!(m.contains("SECRET_KEY")),
            other => panic!("{:?}", other.err()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_holds_no_plaintext_key_or_private_key() {
    for (db, svc) in services().await {
        let (lic, key) = svc.issue(issue(Product::Client), "t").await.unwrap();
        let mut conn = db.pool.get().await.unwrap();
        #[derive(QueryableByName)]
        struct Dump {
            #[diesel(sql_type = diesel::sql_types::Text)]
            row: String,
        }
        let sql = match db.backend() {
            shared_db::Backend::Mysql => {
                "SELECT CONCAT_WS('|', l.id, l.key_prefix, l.key_digest, l.metadata, s.public_key, s.private_key_sealed) AS `row` \
                 FROM licenses l CROSS JOIN signing_keys s"
            }
            shared_db::Backend::Sqlite => {
                "SELECT l.id || '|' || l.key_prefix || '|' || l.key_digest || '|' || l.metadata || '|' || s.public_key || '|' || s.private_key_sealed AS row \
                 FROM licenses l CROSS JOIN signing_keys s"
            }
        };
        let rows: Vec<Dump> = with_conn!(&mut *conn, |c| diesel::sql_query(sql).load(c).await).unwrap();
        let all: String = rows.into_iter().map(|d| d.row).collect();
        assert!(all.contains(&lic.id));
        let compact: String = key.as_str().replace('-', "");
        assert!(
            !all.contains(key.as_str()) && !all.contains(&compact),
            "{}: key stored in plain text",
            db.backend()
        );
        assert!(
            !all.contains(&key.as_str()[6..17]),
            "no later group of the key appears either"
        );
        let events: String = events::for_subject(&mut conn, &format!("license:{}", lic.id))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.data)
            .collect();
        assert!(!events.contains(key.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_and_update_validate_their_input() {
    let (_db, svc) = services().await.into_iter().next().unwrap();
    let field = |r: Result<(License, LicenseKey), LicenseError>| match r {
        Err(LicenseError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let mut r = issue(Product::Client);
    r.owner_email = "not-an-address".into();
    assert_eq!(field(svc.issue(r, "t").await), "owner_email");
    let mut r = issue(Product::Client);
    r.name = " ".into();
    assert_eq!(field(svc.issue(r, "t").await), "name");
    let mut r = issue(Product::Client);
    r.expires_at = Some(Utc::now() + chrono::Duration::days(1));
    assert_eq!(field(svc.issue(r, "t").await), "duration", "both expiry forms");
    let mut r = issue(Product::Client);
    r.duration = None;
    r.expires_at = Some(Utc::now() - chrono::Duration::days(1));
    assert_eq!(field(svc.issue(r, "t").await), "expires_at");
    let mut r = issue(Product::Client);
    r.max_machines = Some(0);
    assert_eq!(field(svc.issue(r, "t").await), "max_machines");
    let mut r = issue(Product::Client);
    r.entitlements = vec!["has space".into()];
    assert_eq!(field(svc.issue(r, "t").await), "entitlements");
    let mut r = issue(Product::Client);
    r.heartbeat_interval_secs = Some(1);
    assert_eq!(field(svc.issue(r, "t").await), "heartbeat_interval_secs");
    let mut r = issue(Product::Client);
    r.duration = None;
    let (never, _) = svc.issue(r, "t").await.unwrap();
    assert_eq!(never.expires_at, None);
    assert!(matches!(
        svc.update(&never.id, LicensePatch::default(), "t").await,
        Err(LicenseError::Invalid { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_filters_and_pages() {
    for (db, svc) in services().await {
        for i in 0..5 {
            let mut r = issue(if i % 2 == 0 { Product::Client } else { Product::Platform });
            r.owner_email = format!("owner{}@x.example", i % 2);
            r.duration = Some(format!("{}d", i + 1));
            svc.issue(r, "t").await.unwrap();
        }
        let all = svc.list(&LicenseFilter::default()).await.unwrap();
        assert_eq!(all.items.len(), 5);
        assert!(all.next_cursor.is_none());
        let clients = svc
            .list(&LicenseFilter {
                product: Some(Product::Client),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(clients.items.len(), 3);
        let owner = svc
            .list(&LicenseFilter {
                owner_email: Some("owner1@x.example".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(owner.items.len(), 2);
        let soon = Utc::now() + chrono::Duration::hours(60);
        let expiring = svc
            .list(&LicenseFilter {
                expires_before: Some(soon),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(expiring.items.len(), 2, "{}", db.backend());
        svc.suspend(&all.items[0].id, "t").await.unwrap();
        let suspended = svc
            .list(&LicenseFilter {
                status: Some(LicenseStatus::Suspended),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(suspended.items.len(), 1);

        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = svc
                .list(&LicenseFilter {
                    limit: Some(2),
                    cursor: cursor.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            seen.extend(page.items.iter().map(|l| l.id.clone()));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, all.items.iter().map(|l| l.id.clone()).collect::<Vec<_>>());
        assert!(
            svc.list(&LicenseFilter {
                limit: Some(0),
                ..Default::default()
            })
            .await
            .is_err()
        );
        assert!(
            svc.list(&LicenseFilter {
                cursor: Some("%%%".into()),
                ..Default::default()
            })
            .await
            .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_rotation_keeps_issued_keys_and_the_signing_key() {
    const NEW: &[u8] = b"the-new-secret-key-0123456789abcdef";
    for (db, old) in services().await {
        let (lic, key) = old.issue(issue(Product::Client), "t").await.unwrap();
        let kid = old.public_key().await.unwrap().kid;

        // Without the old secret, neither the key nor the signing key opens.
        let alone = LicenseService::new(db.pool.clone(), NEW, None).unwrap();
        assert_eq!(
            alone.validate(&validate(&key)).await.unwrap().code,
            ValidationCode::NotFound
        );
        assert!(alone.signer().await.is_err());

        // With it, both do, and are re-keyed under the new secret on the way.
        let rotated = LicenseService::new(db.pool.clone(), NEW, None)
            .unwrap()
            .with_previous_secrets(&[SECRET]);
        assert_eq!(rotated.signer().await.unwrap().kid(), kid);
        let v = rotated.validate(&validate(&key)).await.unwrap();
        assert_eq!((v.code, v.license.unwrap().id), (ValidationCode::Valid, lic.id.clone()));
        let mut conn = db.pool.get().await.unwrap();
        let trail = events::for_subject(&mut conn, &format!("license:{}", lic.id))
            .await
            .unwrap();
        assert!(trail.iter().any(|e| e.event_type == "license.rekeyed"));

        // Now the old secret can go.
        let after = LicenseService::new(db.pool.clone(), NEW, None).unwrap();
        assert_eq!(
            after.validate(&validate(&key)).await.unwrap().code,
            ValidationCode::Valid
        );
        assert_eq!(after.signer().await.unwrap().kid(), kid);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signing_key_rotation_keeps_old_certificates_verifiable() {
    for (db, svc) in services().await {
        let (_, key) = svc.issue(issue(Product::Platform), "t").await.unwrap();
        let req = CheckoutRequest {
            key: key.as_str().into(),
            fingerprint: None,
            ttl: Some("7d".into()),
        };
        let before = svc.checkout(&req).await.unwrap();
        let new_kid = svc.rotate_signing_key().await.unwrap();
        assert_ne!(new_kid, before.kid);

        // A replica started after the rotation signs with the new key...
        let restarted = LicenseService::new(db.pool.clone(), SECRET, None).unwrap();
        let after = restarted.checkout(&req).await.unwrap();
        assert_eq!(after.kid, new_kid);
        // ...and publishes both, the new one first.
        let published = restarted.public_key().await.unwrap();
        assert_eq!(published.kid, new_kid);
        let kids: Vec<&str> = published.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, [new_kid.as_str(), before.kid.as_str()]);
        let mut verifier = Verifier::new();
        for k in &published.keys {
            verifier = verifier.with_base64_key(&k.kid, &k.public_key).unwrap();
        }
        for cert in [&before.certificate, &after.certificate] {
            verifier.verify(cert, Utc::now(), Expect::default()).unwrap();
        }

        // Retiring the old key unpublishes it; the key in use cannot be retired.
        assert!(matches!(
            restarted.retire_signing_key(&new_kid).await,
            Err(LicenseError::Invalid { field: "kid", .. })
        ));
        restarted.retire_signing_key(&before.kid).await.unwrap();
        assert_eq!(restarted.public_key().await.unwrap().keys.len(), 1);
        let _ = db;
    }
}

/// Validations in flight together share look-ups (`shared_db::batch`): each must still
/// get its own licence, machine and code, and a change committed before a validation
/// starts must be seen by it.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_validations_each_get_their_own_answer() {
    for (db, svc) in services().await {
        let mut keys = Vec::new();
        for i in 0..12 {
            let (lic, key) = svc.issue(issue(Product::Client), "t").await.unwrap();
            svc.activate(&activate(&key, &format!("fp-{i}"))).await.unwrap();
            keys.push((lic.id, key));
        }
        svc.suspend(&keys[3].0, "t").await.unwrap();
        svc.revoke(&keys[7].0, "t").await.unwrap();
        let unknown = LicenseKey::generate().unwrap();

        // 240 validations at once: each key 20 times, with its own fingerprint, another
        // licence's fingerprint, or none; plus an unknown key.
        let mut tasks = Vec::new();
        for round in 0..20 {
            for (i, (id, key)) in keys.iter().enumerate() {
                let svc = svc.clone();
                let mut req = validate(key);
                req.fingerprint = match round % 3 {
                    0 => Some(format!("fp-{i}")),
                    1 => Some(format!("fp-{}", (i + 1) % 12)),
                    _ => None,
                };
                let (id, round) = (id.clone(), round);
                tasks.push(tokio::spawn(async move { (i, id, round, svc.validate(&req).await) }));
            }
            let svc = svc.clone();
            let req = validate(&unknown);
            tasks.push(tokio::spawn(async move {
                (99, String::new(), round, svc.validate(&req).await)
            }));
        }
        for t in tasks {
            let (i, id, round, v) = t.await.unwrap();
            let v = v.unwrap();
            let expected = match (i, round % 3) {
                (99, _) => ValidationCode::NotFound,
                (3, _) => ValidationCode::Suspended,
                (7, _) => ValidationCode::Revoked,
                (_, 1) => ValidationCode::FingerprintScopeMismatch,
                _ => ValidationCode::Valid,
            };
            assert_eq!(v.code, expected, "{}: key {i} round {round}", db.backend());
            if i != 99 {
                assert_eq!(v.license.unwrap().id, id, "{}: key {i}", db.backend());
            }
        }

        // Committed before the next validation starts: seen by it, however busy.
        let (id, key) = &keys[0];
        let busy: Vec<_> = (0..30)
            .map(|j| {
                let svc = svc.clone();
                let req = validate(&keys[j % 12].1);
                tokio::spawn(async move { svc.validate(&req).await })
            })
            .collect();
        svc.suspend(id, "t").await.unwrap();
        let after = svc.validate(&validate(key)).await.unwrap();
        assert_eq!(after.code, ValidationCode::Suspended, "{}", db.backend());
        for t in busy {
            t.await.unwrap().unwrap();
        }
    }
}
