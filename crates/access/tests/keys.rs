//! API keys against real databases: SQLite always, MariaDB when reachable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use access::{AccessError, AccessService, ApiKeyStatus, KeyFilter};
use secrecy::ExposeSecret;
use shared_db::KeyRing;
use shared_db::paging::{Order, PagingError};
use shared_db::testing::TestDb;

fn service(secret: &[u8], previous: &[&[u8]]) -> AccessService {
    AccessService::new(KeyRing::new(secret, previous)).with_namespaces(["web".to_owned()])
}

#[tokio::test(flavor = "multi_thread")]
async fn create_authenticate_list_and_revoke() {
    for db in TestDb::each().await {
        let keys = service(b"current-secret-0123456789abcdef", &[]);
        let mut conn = db.pool.get().await.unwrap();
        let issued = keys
            .create(
                &mut conn,
                " web ",
                &["blobs:read:web".into(), "emails:send".into()],
                None,
                None,
            )
            .await
            .unwrap();
        let secret = issued.secret.expose_secret().to_owned();
        assert!(secret.starts_with(access::KEY_PREFIX));
        assert_eq!(issued.row.name, "web");
        let who = keys.authenticate(&db.pool, &secret).await.unwrap();
        assert_eq!(who.key_id, issued.row.id);
        assert_eq!(who.scopes, ["blobs:read:web", "emails:send"]);
        assert!(who.require("emails:send").is_ok());
        assert!(matches!(
            who.require("emails:read"),
            Err(AccessError::InsufficientScope { .. })
        ));
        assert!(matches!(
            keys.authenticate(&db.pool, "eb_nosuchkey").await,
            Err(AccessError::InvalidKey)
        ));

        // Refusals.
        for (scopes, name) in [
            (vec!["blobs:read:nosuch".to_owned()], "x"),
            (vec!["emails:sned".to_owned()], "x"),
            (vec![], "x"),
            (vec!["*".to_owned()], " "),
        ] {
            assert!(keys.create(&mut conn, name, &scopes, None, None).await.is_err());
        }
        // A key hands on only what it holds.
        assert!(matches!(
            keys.create(&mut conn, "more", &["*".into()], None, Some(&who)).await,
            Err(AccessError::InsufficientScope { .. })
        ));

        // Pages of one, newest first, then oldest first.
        let second = keys
            .create(&mut conn, "second", &["events:read".into()], None, None)
            .await
            .unwrap();
        let one = |cursor: Option<String>, order: Option<Order>| KeyFilter {
            limit: Some(1),
            cursor,
            order,
        };
        let first_page = keys.list(&mut conn, &one(None, None)).await.unwrap();
        assert_eq!(first_page.items[0].id, second.row.id);
        let next = keys
            .list(&mut conn, &one(first_page.next_cursor.clone(), None))
            .await
            .unwrap();
        assert_eq!(next.items[0].id, issued.row.id);
        assert_eq!(next.next_cursor, None);
        let oldest = keys.list(&mut conn, &one(None, Some(Order::Asc))).await.unwrap();
        assert_eq!(oldest.items[0].id, issued.row.id);
        for bad in [Some(0), Some(501)] {
            let filter = KeyFilter {
                limit: bad,
                ..KeyFilter::default()
            };
            assert!(matches!(
                keys.list(&mut conn, &filter).await,
                Err(AccessError::Paging(PagingError::Limit))
            ));
        }
        let foreign = KeyFilter {
            cursor: Some("%%%".into()),
            ..KeyFilter::default()
        };
        assert!(matches!(
            keys.list(&mut conn, &foreign).await,
            Err(AccessError::Paging(PagingError::Cursor(_)))
        ));

        // Revoked keys stop working; revoking again changes nothing.
        let revoked = keys.revoke(&mut conn, &issued.row.id, None).await.unwrap();
        assert_eq!(access::status(&revoked, shared_db::now()), ApiKeyStatus::Revoked);
        let again = keys.revoke(&mut conn, &issued.row.id, None).await.unwrap();
        assert_eq!(again.revoked_at, revoked.revoked_at);
        assert!(matches!(
            keys.authenticate(&db.pool, &secret).await,
            Err(AccessError::Revoked)
        ));
        assert!(matches!(
            keys.revoke(&mut conn, "no-such-id", None).await,
            Err(AccessError::NotFound)
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_made_under_an_earlier_secret_are_rekeyed_on_first_use() {
    for db in TestDb::each().await {
        let old = service(b"old-secret-0123456789abcdef01234", &[]);
        let mut conn = db.pool.get().await.unwrap();
        let used = old.create(&mut conn, "used", &["*".into()], None, None).await.unwrap();
        let used_key = used.secret.expose_secret().to_owned();
        let unused = old
            .create(&mut conn, "unused", &["*".into()], None, None)
            .await
            .unwrap();

        let rotated = service(
            b"new-secret-0123456789abcdef01234",
            &[b"old-secret-0123456789abcdef01234"],
        );
        assert_eq!(
            rotated.authenticate(&db.pool, &used_key).await.unwrap().key_id,
            used.row.id
        );
        let trail = shared_db::events::for_subject(&mut conn, &format!("api_key:{}", used.row.id))
            .await
            .unwrap();
        assert!(trail.iter().any(|e| e.event_type == "api_key.rekeyed"));

        let after = service(b"new-secret-0123456789abcdef01234", &[]);
        assert!(after.authenticate(&db.pool, &used_key).await.is_ok());
        assert!(matches!(
            after.authenticate(&db.pool, unused.secret.expose_secret()).await,
            Err(AccessError::InvalidKey)
        ));
    }
}
