//! Validation codes and concurrent validations.

use super::*;

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
            "UPDATE eb_machines SET last_heartbeat_at = ?"
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
                nonce: None,
            })
            .await
            .unwrap();
        assert!(beat.machine.last_heartbeat_at.unwrap() > old.and_utc());
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
