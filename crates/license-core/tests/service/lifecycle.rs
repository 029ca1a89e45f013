//! The lifecycle, input checks and listing.

use super::*;

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
        let renewed = svc.renew(&lic.id, renew_by("30d"), "a").await.unwrap();
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
        let revived = svc.renew(&lic.id, renew_by("1d"), "a").await.unwrap();
        let from_now = revived.expires_at.unwrap() - Utc::now();
        assert!(from_now > chrono::Duration::hours(23) && from_now <= chrono::Duration::days(1));

        assert_eq!(svc.revoke(&lic.id, "a").await.unwrap().status, LicenseStatus::Revoked);
        assert!(invalid(svc.revoke(&lic.id, "a").await));
        assert!(invalid(svc.reinstate(&lic.id, "a").await), "revoked is final");
        assert!(invalid(svc.suspend(&lic.id, "a").await));
        assert!(invalid(svc.renew(&lic.id, renew_by("1d"), "a").await));
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
        // The paging rule: limit 1 to 500 (default 100), a foreign cursor refused.
        for (limit, cursor, field) in [
            (Some(0), None, "limit"),
            (Some(501), None, "limit"),
            (None, Some("%%%"), "cursor"),
        ] {
            match svc
                .list(&LicenseFilter {
                    limit,
                    cursor: cursor.map(Into::into),
                    ..Default::default()
                })
                .await
            {
                Err(LicenseError::Paging(e)) => assert_eq!(e.field(), field),
                other => panic!("{limit:?} {cursor:?}: {other:?}"),
            }
        }
        assert_eq!(
            svc.list(&LicenseFilter {
                limit: Some(500),
                ..Default::default()
            })
            .await
            .unwrap()
            .items
            .len(),
            5
        );
    }
}
