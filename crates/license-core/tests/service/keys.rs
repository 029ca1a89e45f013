//! Certificates, signing keys and secret rotation.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn checkout_signs_a_certificate_the_published_key_verifies() {
    for (db, svc) in services().await {
        let (lic, key) = svc.issue(issue(Product::Client), "t").await.unwrap();
        svc.activate(&activate(&key, "fp-1")).await.unwrap();
        let req = CheckoutRequest {
            key: key.as_str().into(),
            fingerprint: Some("fp-1".into()),
            ttl: Some("7d".into()),
            nonce: None,
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
        let again = LicenseService::new(db.pool.clone(), KeyRing::new(SECRET, &[]), None).unwrap();
        assert_eq!(again.public_key().await.unwrap().kid, pk.kid);
        // Another SECRET_KEY cannot open the stored key: a clear start-up error.
        let other = LicenseService::new(
            db.pool.clone(),
            KeyRing::new(b"another-secret-0123456789abcdef", &[]),
            None,
        )
        .unwrap();
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
                 FROM eb_licenses l CROSS JOIN eb_signing_keys s"
            }
            shared_db::Backend::Sqlite => {
                "SELECT l.id || '|' || l.key_prefix || '|' || l.key_digest || '|' || l.metadata || '|' || s.public_key || '|' || s.private_key_sealed AS row \
                 FROM eb_licenses l CROSS JOIN eb_signing_keys s"
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
async fn a_secret_rotation_keeps_issued_keys_and_the_signing_key() {
    const NEW: &[u8] = b"the-new-secret-key-0123456789abcdef";
    for (db, old) in services().await {
        let (lic, key) = old.issue(issue(Product::Client), "t").await.unwrap();
        let kid = old.public_key().await.unwrap().kid;

        // Without the old secret, neither the key nor the signing key opens.
        let alone = LicenseService::new(db.pool.clone(), KeyRing::new(NEW, &[]), None).unwrap();
        assert_eq!(
            alone.validate(&validate(&key)).await.unwrap().code,
            ValidationCode::NotFound
        );
        assert!(alone.signer().await.is_err());

        // With it, both do, and are re-keyed under the new secret on the way.
        let rotated = LicenseService::new(db.pool.clone(), KeyRing::new(NEW, &[SECRET]), None).unwrap();
        assert_eq!(rotated.signer().await.unwrap().kid(), kid);
        let v = rotated.validate(&validate(&key)).await.unwrap();
        assert_eq!((v.code, v.license.unwrap().id), (ValidationCode::Valid, lic.id.clone()));
        let mut conn = db.pool.get().await.unwrap();
        let trail = events::for_subject(&mut conn, &format!("license:{}", lic.id))
            .await
            .unwrap();
        assert!(trail.iter().any(|e| e.event_type == "license.rekeyed"));

        // Now the old secret can go.
        let after = LicenseService::new(db.pool.clone(), KeyRing::new(NEW, &[]), None).unwrap();
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
            nonce: None,
        };
        let before = svc.checkout(&req).await.unwrap();
        let new_kid = svc.rotate_signing_key().await.unwrap();
        assert_ne!(new_kid, before.kid);

        // A replica started after the rotation signs with the new key...
        let restarted = LicenseService::new(db.pool.clone(), KeyRing::new(SECRET, &[]), None).unwrap();
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
