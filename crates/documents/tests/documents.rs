//! Shared documents against real databases: SQLite always, MariaDB when reachable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use documents::{Change, Conditions, DocFilter, DocumentError, DocumentService};
use serde_json::json;
use shared_db::paging::PagingError;
use shared_db::testing::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn write_patch_list_and_delete() {
    for db in TestDb::each().await {
        let docs = DocumentService::new(200);
        let mut conn = db.pool.get().await.unwrap();
        let none = Conditions::default();
        let (doc, created) = docs
            .write(
                &mut conn,
                "notes",
                "a",
                Change::Replace(json!({"team": "web", "n": 1})),
                none,
                "cli",
            )
            .await
            .unwrap();
        assert!(created && doc.version == 1);
        let (doc, created) = docs
            .write(
                &mut conn,
                "notes",
                "a",
                Change::MergePatch(json!({"n": null, "x": 2})),
                none,
                "cli",
            )
            .await
            .unwrap();
        assert!(!created && doc.version == 2);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&doc.body).unwrap(),
            json!({"team": "web", "x": 2})
        );
        let stale = Conditions {
            if_match: Some(1),
            if_none_match: false,
        };
        assert!(matches!(
            docs.write(&mut conn, "notes", "a", Change::Replace(json!({})), stale, "cli")
                .await,
            Err(DocumentError::PreconditionFailed { current: Some(2) })
        ));
        assert!(matches!(
            docs.write(
                &mut conn,
                "notes",
                "a",
                Change::Replace(json!({"x": "y".repeat(300)})),
                none,
                "cli"
            )
            .await,
            Err(DocumentError::TooLarge { .. })
        ));
        assert!(matches!(
            docs.write(&mut conn, "notes", "b", Change::MergePatch(json!({})), none, "cli")
                .await,
            Err(DocumentError::NotFound)
        ));
        for id in ["b", "c", "d"] {
            let team = if id == "c" { "ai" } else { "web" };
            docs.write(
                &mut conn,
                "notes",
                id,
                Change::Replace(json!({"team": team})),
                none,
                "cli",
            )
            .await
            .unwrap();
        }

        // Pages of two web documents: a, b, then d.
        let mut filter = DocFilter {
            equals: vec![("team".into(), "web".into())],
            limit: Some(2),
            ..DocFilter::default()
        };
        let page = docs.list(&mut conn, "notes", &filter).await.unwrap();
        let ids: Vec<&str> = page.items.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        filter.cursor = page.next_cursor.clone();
        assert!(filter.cursor.as_deref().is_some_and(|c| c != "b"), "opaque cursor");
        let page = docs.list(&mut conn, "notes", &filter).await.unwrap();
        let ids: Vec<&str> = page.items.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["d"]);
        assert_eq!(page.next_cursor, None);
        for limit in [0, 501] {
            let filter = DocFilter {
                limit: Some(limit),
                ..DocFilter::default()
            };
            assert!(matches!(
                docs.list(&mut conn, "notes", &filter).await,
                Err(DocumentError::Paging(PagingError::Limit))
            ));
        }
        let foreign = DocFilter {
            cursor: Some("%%%".into()),
            ..DocFilter::default()
        };
        assert!(matches!(
            docs.list(&mut conn, "notes", &foreign).await,
            Err(DocumentError::Paging(PagingError::Cursor(_)))
        ));

        docs.delete(&mut conn, "notes", "a", Some(2), "cli").await.unwrap();
        assert!(matches!(
            docs.get(&mut conn, "notes", "a").await,
            Err(DocumentError::NotFound)
        ));
        let trail = shared_db::events::for_subject(&mut conn, "document:notes/a")
            .await
            .unwrap();
        let types: Vec<&str> = trail.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["document.written", "document.written", "document.deleted"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schemas_check_writes() {
    for db in TestDb::each().await {
        let docs = DocumentService::new(10_000);
        let mut conn = db.pool.get().await.unwrap();
        let schema = json!({"type": "object", "required": ["name"]});
        docs.set_schema(&mut conn, "people", Some(&schema)).await.unwrap();
        assert_eq!(docs.schema(&mut conn, "people").await.unwrap(), Some(schema));
        let none = Conditions::default();
        assert!(matches!(
            docs.write(&mut conn, "people", "p", Change::Replace(json!({})), none, "cli")
                .await,
            Err(DocumentError::SchemaViolation(_))
        ));
        docs.write(
            &mut conn,
            "people",
            "p",
            Change::Replace(json!({"name": "Kim"})),
            none,
            "cli",
        )
        .await
        .unwrap();
        assert!(matches!(
            docs.set_schema(&mut conn, "people", Some(&json!({"pattern": "(?=a)"})))
                .await,
            Err(DocumentError::InvalidSchema(_))
        ));
        docs.set_schema(&mut conn, "people", None).await.unwrap();
        assert_eq!(docs.schema(&mut conn, "people").await.unwrap(), None);
    }
}

#[test]
fn collection_and_id_rules() {
    assert!(documents::check_collection("orders-2026_a").is_ok());
    for bad in ["", "Orders", "a/b", &"a".repeat(65)] {
        assert!(documents::check_collection(bad).is_err(), "{bad}");
    }
    assert!(documents::check_id("order 7.json").is_ok());
    for bad in ["", "_schema", "a/b", "a\nb", &"a".repeat(256)] {
        assert!(documents::check_id(bad).is_err(), "{bad}");
    }
}
