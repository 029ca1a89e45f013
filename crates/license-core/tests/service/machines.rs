//! Machine activation within limits.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn machines_activate_within_the_limit_even_when_racing() {
    for (db, svc) in services().await {
        let (lic, key) = svc.issue(issue(Product::Client), "t").await.unwrap();
        let m = svc.activate(&activate(&key, "fp-1")).await.unwrap();
        assert_eq!(m.machine.license_id, lic.id);
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
            nonce: None,
        };
        svc.deactivate(&req).await.unwrap();
        assert!(matches!(svc.deactivate(&req).await, Err(LicenseError::MachineNotFound)));
        assert!(matches!(svc.heartbeat(&req).await, Err(LicenseError::MachineNotFound)));
        let again = svc.activate(&activate(&key, "fp-1")).await.unwrap();
        let listed = svc.machines(&lic.id, &MachineQuery::default()).await.unwrap();
        assert_eq!((listed.items.len(), listed.next_cursor.is_none()), (2, true));
        // Pages of one, newest first, then the paging rule's refusals.
        let first = svc
            .machines(
                &lic.id,
                &MachineQuery {
                    limit: Some(1),
                    cursor: None,
                },
            )
            .await
            .unwrap();
        let second = svc
            .machines(
                &lic.id,
                &MachineQuery {
                    limit: Some(1),
                    cursor: first.next_cursor.clone(),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            [first.items[0].id.as_str(), second.items[0].id.as_str()],
            [listed.items[0].id.as_str(), listed.items[1].id.as_str()]
        );
        assert!(second.next_cursor.is_none());
        for (limit, cursor, field) in [
            (Some(0), None, "limit"),
            (Some(501), None, "limit"),
            (None, Some("%%%"), "cursor"),
        ] {
            let q = MachineQuery {
                limit,
                cursor: cursor.map(Into::into),
            };
            match svc.machines(&lic.id, &q).await {
                Err(LicenseError::Paging(e)) => assert_eq!(e.field(), field),
                other => panic!("{q:?}: {other:?}"),
            }
        }
        svc.remove_machine(&lic.id, &again.machine.id, "api_key:x")
            .await
            .unwrap();
        assert!(matches!(
            svc.remove_machine(&lic.id, &again.machine.id, "x").await,
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
