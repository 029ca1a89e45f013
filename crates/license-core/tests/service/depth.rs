//! Licensing depth: policies, dead machines freeing their seats, grace / maintain /
//! first-use expiry, and failed validations as coalesced events.

use super::*;
use license_core::model::{CreatePolicy, ExpiryBasis, ExpiryStrategy, PolicyPatch};

fn policy(product: Product) -> CreatePolicy {
    CreatePolicy {
        product,
        name: "Pro".into(),
        max_machines: Some(3),
        require_machine: false,
        heartbeat_interval_secs: None,
        heartbeat_cull: false,
        heartbeat_resurrection_secs: None,
        grace_period: None,
        expiry_strategy: ExpiryStrategy::Restrict,
        expiry_basis: ExpiryBasis::Issue,
        duration: None,
        entitlements: vec!["pro".into()],
        metadata: serde_json::Map::new(),
    }
}

/// A licence of `policy_id` that sets none of the terms itself.
fn under(policy_id: &str) -> IssueLicense {
    IssueLicense {
        duration: None,
        max_machines: None,
        entitlements: vec![],
        policy_id: Some(policy_id.into()),
        ..issue(Product::Client)
    }
}

fn machine(key: &LicenseKey, fingerprint: &str) -> MachineRequest {
    MachineRequest {
        key: key.as_str().into(),
        fingerprint: fingerprint.into(),
        nonce: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_change_is_seen_by_its_licences_and_a_licence_overrides_it() {
    for (db, svc) in services().await {
        let b = db.backend();
        let p = svc.create_policy(policy(Product::Client), "t").await.unwrap();
        let (lic, key) = svc.issue(under(&p.id), "t").await.unwrap();
        assert_eq!(
            (lic.max_machines, lic.entitlements.clone()),
            (Some(3), vec!["pro".to_owned()]),
            "{b}"
        );
        assert_eq!(lic.policy_id.as_deref(), Some(p.id.as_str()));
        assert!(lic.overrides.is_empty(), "{b}: {:?}", lic.overrides);

        // Pro becomes 1 machine with a 10-minute heartbeat: the licence follows at once.
        let patch = PolicyPatch {
            max_machines: Some(Some(1)),
            heartbeat_interval_secs: Some(Some(600)),
            entitlements: Some(vec!["pro".into(), "sso".into()]),
            ..Default::default()
        };
        let p2 = svc.update_policy(&p.id, patch, "t").await.unwrap();
        assert_eq!(p2.licenses_count, 1);
        let now = svc.get(&lic.id).await.unwrap();
        assert_eq!(
            (now.max_machines, now.heartbeat_interval_secs),
            (Some(1), Some(600)),
            "{b}"
        );
        svc.activate(&activate(&key, "m1")).await.unwrap();
        match svc.activate(&activate(&key, "m2")).await {
            Err(LicenseError::NotValid {
                code: ValidationCode::TooManyMachines,
                ..
            }) => {}
            other => panic!("{b}: {other:?}"),
        }
        let v = svc
            .validate(&ValidateRequest {
                entitlements: vec!["sso".into()],
                ..validate(&key)
            })
            .await
            .unwrap();
        assert_eq!(v.code, ValidationCode::Valid, "{b}: {}", v.detail);

        // The licence's own limit overrides the policy's; its entitlements add to them.
        let own = LicensePatch {
            max_machines: Some(Some(2)),
            entitlements: Some(vec!["export".into()]),
            ..Default::default()
        };
        let lic2 = svc.update(&lic.id, own, "t").await.unwrap();
        assert_eq!(lic2.max_machines, Some(2));
        assert_eq!(lic2.entitlements, ["export", "pro", "sso"]);
        assert_eq!(lic2.overrides, ["max_machines", "entitlements"]);
        svc.activate(&activate(&key, "m2")).await.unwrap();

        // A policy of another product, or none, is refused by field; one in use stays.
        let other = svc.create_policy(policy(Product::Platform), "t").await.unwrap();
        for bad in [other.id.as_str(), "no-such-policy"] {
            match svc.issue(under(bad), "t").await {
                Err(LicenseError::Invalid { field: "policy_id", .. }) => {}
                other => panic!("{b}: {other:?}"),
            }
            let patch = LicensePatch {
                policy_id: Some(Some(bad.into())),
                ..Default::default()
            };
            assert!(matches!(
                svc.update(&lic.id, patch, "t").await,
                Err(LicenseError::Invalid { field: "policy_id", .. })
            ));
        }
        assert!(matches!(
            svc.delete_policy(&p.id, "t").await,
            Err(LicenseError::PolicyInUse(1))
        ));
        svc.delete_policy(&other.id, "t").await.unwrap();
        assert!(matches!(svc.policy(&other.id).await, Err(LicenseError::PolicyNotFound)));
        // Detached, the licence keeps only its own terms.
        let detach = LicensePatch {
            policy_id: Some(None),
            ..Default::default()
        };
        let alone = svc.update(&lic.id, detach, "t").await.unwrap();
        assert_eq!((alone.max_machines, alone.heartbeat_interval_secs), (Some(2), None));
        assert_eq!(alone.entitlements, ["export"]);
        svc.delete_policy(&p.id, "t").await.unwrap();

        // Terms that cannot work together are refused.
        let cull_without_interval = CreatePolicy {
            heartbeat_cull: true,
            ..policy(Product::Client)
        };
        assert!(matches!(
            svc.create_policy(cull_without_interval, "t").await,
            Err(LicenseError::Invalid {
                field: "heartbeat_cull",
                ..
            })
        ));
        let trial_without_duration = CreatePolicy {
            expiry_basis: ExpiryBasis::FirstActivation,
            ..policy(Product::Client)
        };
        assert!(matches!(
            svc.create_policy(trial_without_duration, "t").await,
            Err(LicenseError::Invalid { field: "duration", .. })
        ));
        let page = svc.policies(&Default::default()).await.unwrap();
        assert!(page.items.is_empty(), "{b}");
        assert_eq!(events_of(&db, "policy.*").await.len(), 5, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_machine_frees_its_seat_and_may_come_back() {
    for (db, svc) in services().await {
        let b = db.backend();
        let p = svc
            .create_policy(
                CreatePolicy {
                    max_machines: Some(1),
                    heartbeat_interval_secs: Some(60),
                    heartbeat_cull: true,
                    heartbeat_resurrection_secs: Some(3600),
                    ..policy(Product::Client)
                },
                "t",
            )
            .await
            .unwrap();
        let (lic, key) = svc.issue(under(&p.id), "t").await.unwrap();
        let crashed = svc.activate(&activate(&key, "crashed-pc")).await.unwrap().machine;
        // The seat is taken while the machine is alive.
        assert!(svc.activate(&activate(&key, "new-pc")).await.is_err());
        assert_eq!(svc.sweep().await.unwrap().culled, 0, "{b}");

        // Silent for two minutes: the sweep culls it (dead + culled, once, even when two
        // replicas sweep at the same moment).
        let old = shared_db::now() - chrono::Duration::seconds(120);
        exec_at(&db, "UPDATE eb_machines SET last_heartbeat_at = ?", old).await;
        let other_replica = LicenseService::new(db.pool.clone(), KeyRing::new(SECRET, &[]), None).unwrap();
        let (a, b2) = tokio::join!(svc.sweep(), other_replica.sweep());
        assert_eq!(a.unwrap().culled + b2.unwrap().culled, 1, "{b}");
        assert_eq!(events_of(&db, "machine.culled").await.len(), 1, "{b}");
        assert_eq!(events_of(&db, "machine.heartbeat.dead").await.len(), 1, "{b}");
        assert_eq!(svc.get(&lic.id).await.unwrap().machines_count, 0);

        // A new machine activates; the culled one cannot come back while the seat is taken.
        let new_pc = svc.activate(&activate(&key, "new-pc")).await.unwrap().machine;
        match svc.heartbeat(&machine(&key, "crashed-pc")).await {
            Err(LicenseError::NotValid {
                code: ValidationCode::TooManyMachines,
                detail,
            }) => {
                assert!(detail.contains("culled"), "{detail}")
            }
            other => panic!("{b}: {other:?}"),
        }
        // Once the seat is free, its heartbeat within the window brings it back, same id.
        svc.deactivate(&machine(&key, "new-pc")).await.unwrap();
        let back = svc.heartbeat(&machine(&key, "crashed-pc")).await.unwrap().machine;
        assert_eq!(
            (back.id.as_str(), back.created_at),
            (crashed.id.as_str(), crashed.created_at)
        );
        assert_eq!(events_of(&db, "machine.resurrected").await.len(), 1, "{b}");
        assert!(svc.heartbeat(&machine(&key, "never-was")).await.is_err());

        // Activation over the limit culls the dead first, without waiting for the sweep.
        exec_at(&db, "UPDATE eb_machines SET last_heartbeat_at = ?", old).await;
        let replaced = svc.activate(&activate(&key, "another-pc")).await.unwrap();
        assert_ne!(replaced.machine.id, new_pc.id);
        assert_eq!(events_of(&db, "machine.culled").await.len(), 2, "{b}");

        // Past the window the culled machine is forgotten and does not come back.
        exec_at(&db, "UPDATE eb_culled_machines SET resurrect_until = ?", old).await;
        assert_eq!(svc.sweep().await.unwrap().forgotten, 1, "{b}");
        assert!(matches!(
            svc.heartbeat(&machine(&key, "crashed-pc")).await,
            Err(LicenseError::MachineNotFound)
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_machine_without_culling_is_reported_once_per_silence() {
    for (db, svc) in services().await {
        let b = db.backend();
        let req = IssueLicense {
            heartbeat_interval_secs: Some(60),
            ..issue(Product::Client)
        };
        let (_, key) = svc.issue(req, "t").await.unwrap();
        svc.activate(&activate(&key, "quiet")).await.unwrap();
        let old = shared_db::now() - chrono::Duration::seconds(120);
        exec_at(&db, "UPDATE eb_machines SET last_heartbeat_at = ?", old).await;
        assert_eq!(svc.sweep().await.unwrap().dead, 1, "{b}");
        assert_eq!(svc.sweep().await.unwrap().dead, 0, "{b}");
        assert_eq!(events_of(&db, "machine.heartbeat.dead").await.len(), 1, "{b}");
        assert!(events_of(&db, "machine.culled").await.is_empty());
        // Alive again, then silent again: a second report.
        svc.heartbeat(&machine(&key, "quiet")).await.unwrap();
        exec_at(&db, "UPDATE eb_machines SET last_heartbeat_at = ?", old).await;
        assert_eq!(svc.sweep().await.unwrap().dead, 1, "{b}");
        assert_eq!(events_of(&db, "machine.heartbeat.dead").await.len(), 2, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grace_maintain_and_first_use_expiry() {
    for (db, svc) in services().await {
        let b = db.backend();
        let past = shared_db::now() - chrono::Duration::hours(1);
        // Grace: expired an hour ago with a day of grace: valid, `grace_period`, once an event.
        let req = IssueLicense {
            grace_period: Some("1d".into()),
            ..issue(Product::Client)
        };
        let (g, gkey) = svc.issue(req, "t").await.unwrap();
        set_expiry(&db, &g.id, past).await;
        for _ in 0..3 {
            let v = svc.validate(&validate(&gkey)).await.unwrap();
            assert_eq!((v.valid, v.code), (true, ValidationCode::GracePeriod), "{b}");
            let end = v.grace_ends_at.unwrap();
            assert!(end > Utc::now() + chrono::Duration::hours(22), "{end}");
        }
        assert_eq!(events_of(&db, "license.grace_started").await.len(), 1, "{b}");
        // Machines can be activated during the grace; a certificate carries its end.
        svc.activate(&activate(&gkey, "m")).await.unwrap();
        // Past the grace: expired.
        let long_ago = shared_db::now() - chrono::Duration::days(3);
        set_expiry(&db, &g.id, long_ago).await;
        let v = svc.validate(&validate(&gkey)).await.unwrap();
        assert_eq!((v.valid, v.code), (false, ValidationCode::Expired), "{b}");
        // Renewing clears the mark: the next expiry's grace is recorded again.
        svc.renew(&g.id, renew_by("1d"), "t").await.unwrap();
        set_expiry(&db, &g.id, past).await;
        svc.validate(&validate(&gkey)).await.unwrap();
        assert_eq!(events_of(&db, "license.grace_started").await.len(), 2, "{b}");

        // Maintain: valid for ever after expiry, `expired_maintained`; other checks still apply.
        let req = IssueLicense {
            expiry_strategy: Some(ExpiryStrategy::Maintain),
            ..issue(Product::Client)
        };
        let (m, mkey) = svc.issue(req, "t").await.unwrap();
        set_expiry(&db, &m.id, long_ago).await;
        let v = svc.validate(&validate(&mkey)).await.unwrap();
        assert_eq!((v.valid, v.code), (true, ValidationCode::ExpiredMaintained), "{b}");
        let wrong = ValidateRequest {
            product: Some(Product::Platform),
            ..validate(&mkey)
        };
        assert_eq!(
            svc.validate(&wrong).await.unwrap().code,
            ValidationCode::ProductScopeMismatch
        );
        let cert = svc
            .checkout(&CheckoutRequest {
                key: mkey.as_str().into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(cert.payload.maintained);

        // First activation: no expiry until the first machine; then `duration` from then.
        let trial = IssueLicense {
            expiry_basis: Some(ExpiryBasis::FirstActivation),
            duration: Some("14d".into()),
            ..issue(Product::Client)
        };
        let (t, tkey) = svc.issue(trial.clone(), "t").await.unwrap();
        assert_eq!((t.expires_at, t.expiry_started_at), (None, None), "{b}");
        assert_eq!(t.duration.as_deref(), Some("14d"));
        assert_eq!(
            svc.validate(&validate(&tkey)).await.unwrap().code,
            ValidationCode::Valid
        );
        assert!(
            svc.get(&t.id).await.unwrap().expires_at.is_none(),
            "validation does not start it"
        );
        svc.activate(&activate(&tkey, "first")).await.unwrap();
        let started = svc.get(&t.id).await.unwrap();
        let expires = started.expires_at.unwrap();
        let from = started.expiry_started_at.unwrap();
        assert_eq!(expires - from, chrono::Duration::days(14), "{b}");
        svc.activate(&activate(&tkey, "second")).await.unwrap();
        assert_eq!(
            svc.get(&t.id).await.unwrap().expires_at,
            Some(expires),
            "a second activation does not restart it"
        );
        assert_eq!(events_of(&db, "license.expiry_started").await.len(), 1, "{b}");
        // Starting at first use needs a duration and refuses a date.
        assert!(matches!(
            svc.issue(
                IssueLicense {
                    duration: None,
                    ..trial.clone()
                },
                "t"
            )
            .await,
            Err(LicenseError::Invalid { field: "duration", .. })
        ));
        assert!(matches!(
            svc.issue(
                IssueLicense {
                    duration: None,
                    expires_at: Some(Utc::now() + chrono::Duration::days(1)),
                    ..trial.clone()
                },
                "t"
            )
            .await,
            Err(LicenseError::Invalid {
                field: "expires_at",
                ..
            })
        ));

        // First validation, from a policy: the clock starts at the first validation.
        let p = svc
            .create_policy(
                CreatePolicy {
                    expiry_basis: ExpiryBasis::FirstValidation,
                    duration: Some("30d".into()),
                    ..policy(Product::Client)
                },
                "t",
            )
            .await
            .unwrap();
        let (fv, fvkey) = svc.issue(under(&p.id), "t").await.unwrap();
        assert!(fv.expires_at.is_none());
        let v = svc.validate(&validate(&fvkey)).await.unwrap();
        let lic = v.license.unwrap();
        assert_eq!(
            lic.expires_at.unwrap() - lic.expiry_started_at.unwrap(),
            chrono::Duration::days(30)
        );
        assert_eq!(lic.expiry_basis, ExpiryBasis::FirstValidation);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_validations_are_coalesced_events() {
    for (db, svc) in services().await {
        let b = db.backend();
        let (lic, key) = svc.issue(issue(Product::Client), "t").await.unwrap();
        svc.suspend(&lic.id, "t").await.unwrap();
        // A client retrying in a loop: 50 failures, one event now.
        for _ in 0..50 {
            assert_eq!(
                svc.validate(&validate(&key)).await.unwrap().code,
                ValidationCode::Suspended
            );
        }
        let unknown = ValidateRequest {
            key: "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ".into(),
            ..validate(&key)
        };
        for _ in 0..5 {
            svc.validate(&unknown).await.unwrap();
        }
        let events = events_of(&db, "license.validation.failed").await;
        assert_eq!(events.len(), 2, "{b}");
        let first: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(
            (first["code"].as_str(), first["count"].as_u64()),
            (Some("suspended"), Some(1))
        );
        assert_eq!(
            events[0].subject.as_deref(),
            Some(format!("license:{}", lic.id).as_str())
        );
        assert_eq!(events[1].subject.as_deref(), Some("license:unknown"));
        assert!(!events[1].data.contains("ZZZZZ"), "never the key: {}", events[1].data);
        // Valid answers are not failures.
        svc.reinstate(&lic.id, "t").await.unwrap();
        svc.validate(&validate(&key)).await.unwrap();
        // The ones held back are written, with their count, when flushed (the sweep does
        // this once their minute is over; shutdown flushes all).
        svc.flush_failed_validations().await;
        let events = events_of(&db, "license.validation.failed").await;
        assert_eq!(events.len(), 4, "{b}");
        let counts: Vec<u64> = events
            .iter()
            .map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["count"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), 55, "{b}: {counts:?}");
    }
}
