//! The storage use cases over a local store and a real database (SQLite, and MariaDB when
//! one answers): the namespace rules, the paging rule, signed URLs, and the audit events
//! each use case records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use blob_store::{
    BlobError, BlobService, BlobStore, ByteStream, Conditions, Grant, ListRequest, LocalStore, ObjectKey,
    PresignRequest, SignedRequest,
};
use bytes::Bytes;
use futures_util::StreamExt;
use shared_db::paging::PagingError;
use shared_db::testing::TestDb;
use shared_db::{DbPool, KeyRing};

/// `web` (any type, up to 1 MiB, prefix `web/`) and `img` (images up to 10 bytes, prefix
/// `pics/`) over one local store.
fn service(pool: &DbPool, dir: &std::path::Path) -> BlobService {
    let store: Arc<dyn BlobStore> = Arc::new(LocalStore::new(dir).unwrap());
    let namespaces = blob_store::namespace::parse(
        r#"[{"name":"web","max_size":1048576},{"name":"img","max_size":10,"allowed_types":["image/*"],"prefix":"pics/"}]"#,
    )
    .unwrap();
    BlobService::new(
        namespaces.into_iter().map(|n| (n, store.clone())).collect(),
        pool.clone(),
        KeyRing::new(b"secret-0123456789", &[]),
    )
}

fn body(bytes: &'static [u8]) -> ByteStream {
    futures_util::stream::once(async move { Ok(Bytes::from_static(bytes)) }).boxed()
}

fn key(raw: &str) -> ObjectKey {
    ObjectKey::parse(raw).unwrap()
}

async fn put(svc: &BlobService, ns: &str, raw: &str, content: &'static [u8]) -> blob_store::BlobInfo {
    svc.upload(
        ns,
        key(raw),
        Grant::actor("api_key:test"),
        None,
        Some(content.len() as u64),
        || Ok::<_, BlobError>(Conditions::default()),
    )
    .unwrap()
    .put(body(content))
    .await
    .unwrap()
}

/// `(event_type, actor, data)` of the events about `subject`, oldest first.
async fn events(pool: &DbPool, subject: &str) -> Vec<(String, Option<String>, serde_json::Value)> {
    let mut conn = pool.get().await.unwrap();
    shared_db::events::for_subject(&mut conn, subject)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.actor, serde_json::from_str(&e.data).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_and_deletes_record_their_events() {
    for db in TestDb::each().await {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(&db.pool, dir.path());
        let stored = put(&svc, "img", "a/b.png", b"png!").await;
        assert_eq!((stored.namespace.as_str(), stored.key.as_str()), ("img", "a/b.png"));
        assert_eq!(stored.content_type, "image/png");
        let ns = svc.namespace("img").unwrap();
        let full = svc.storage_key(ns, &key("a/b.png")).unwrap();
        assert_eq!(full.as_str(), "pics/a/b.png");
        assert_eq!(svc.public_key(ns, full.as_str()), "a/b.png");
        let object = svc.object("img", &key("a/b.png")).unwrap();
        assert_eq!(object.head().await.unwrap().etag, stored.etag);
        svc.delete("api_key:other", "img", &key("a/b.png"), None).await.unwrap();
        assert!(matches!(
            svc.delete("api_key:other", "img", &key("a/b.png"), None).await,
            Err(BlobError::NotFound)
        ));
        let written = serde_json::json!({
            "size": 4, "etag": stored.etag, "content_type": "image/png", "sha256": stored.sha256,
        });
        assert_eq!(
            events(&db.pool, "blob:img/a/b.png").await,
            [
                ("blob.written".to_owned(), Some("api_key:test".to_owned()), written),
                (
                    "blob.deleted".to_owned(),
                    Some("api_key:other".to_owned()),
                    serde_json::json!({})
                ),
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_follow_the_namespace_rules() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = service(&db.pool, dir.path());
    let refused = |ns: &str, raw: &str, sent_type: Option<&str>, len: u64, grant: Grant| {
        svc.upload(ns, key(raw), grant, sent_type, Some(len), || {
            Ok::<_, BlobError>(Conditions::default())
        })
        .err()
        .unwrap()
    };
    let api_key = || Grant::actor("api_key:test");
    assert!(matches!(refused("nosuch", "a.png", None, 1, api_key()), BlobError::NamespaceNotFound(n) if n == "nosuch"));
    assert!(matches!(
        refused("img", "a.txt", None, 1, api_key()),
        BlobError::TypeNotAllowed { .. }
    ));
    assert!(matches!(
        refused("img", "a.png", None, 11, api_key()),
        BlobError::TooLarge { limit: 10 }
    ));
    let signed = Grant {
        actor: "signed_url".into(),
        content_type: Some("image/png".into()),
        content_length: Some(4),
    };
    assert!(matches!(
        refused("img", "a.png", Some("image/gif"), 4, signed.clone()),
        BlobError::SignatureInvalid(m) if m == "the URL was signed for Content-Type image/png"
    ));
    assert!(matches!(
        refused("img", "a.png", Some("image/png"), 5, signed),
        BlobError::SignatureInvalid(m) if m == "the URL was signed for Content-Length 4"
    ));
    // A form part naming its own type is refused before it is read; a generic one waits
    // for the key.
    let img = svc.namespace("img").unwrap();
    assert!(svc.check_part_type(img, Some("text/plain")).is_err());
    assert!(svc.check_part_type(img, Some("application/octet-stream")).is_ok());
    assert!(matches!(
        svc.form_upload("img", key("a.txt"), "api_key:test", None)
            .err()
            .unwrap(),
        BlobError::TypeNotAllowed { .. }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_follow_the_paging_rule() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = service(&db.pool, dir.path());
    for raw in ["a.txt", "photos/1.jpg", "photos/2026/3.jpg", "z.txt"] {
        put(&svc, "web", raw, b"1").await;
    }
    let list = |limit: Option<u32>, cursor: Option<&str>, delimiter: Option<&str>| {
        let request = ListRequest {
            prefix: None,
            delimiter: delimiter.map(str::to_owned),
            cursor: cursor.map(str::to_owned),
            limit,
        };
        let svc = &svc;
        async move { svc.list("web", &request).await }
    };
    let top = list(None, None, Some("/")).await.unwrap();
    let keys: Vec<&str> = top.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["a.txt", "z.txt"]);
    assert_eq!(top.common_prefixes, ["photos/"]);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = list(Some(3), cursor.as_deref(), None).await.unwrap();
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["a.txt", "photos/1.jpg", "photos/2026/3.jpg", "z.txt"]);
    assert!(list(Some(500), None, None).await.is_ok());
    for bad in [0, 501, 1000] {
        assert!(matches!(
            list(Some(bad), None, None).await,
            Err(BlobError::Paging(PagingError::Limit))
        ));
    }
    assert!(matches!(
        list(None, Some("!!"), None).await,
        Err(BlobError::Paging(PagingError::Cursor(_)))
    ));
    assert!(matches!(
        list(None, None, Some(",")).await,
        Err(BlobError::InvalidQuery(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_signed_urls_are_minted_recorded_and_honoured() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = service(&db.pool, dir.path());
    let link = svc
        .presign(
            "api_key:test",
            "web",
            PresignRequest {
                key: "a b/ü.csv".into(),
                method: "put".into(),
                expires_in: Some(60),
                content_type: None,
                content_length: Some(4),
            },
            "https://eb.example/",
        )
        .await
        .unwrap();
    assert_eq!(link.method, "PUT");
    assert!(
        link.url
            .starts_with("https://eb.example/api/v1/blobs/web/a%20b/%C3%BC.csv?X-EB-Method=PUT&X-EB-Expires="),
        "{}",
        link.url
    );
    assert_eq!(link.headers["Content-Type"], "text/csv");
    assert_eq!(link.headers["Content-Length"], "4");
    let url = url::Url::parse(&link.url).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    let signed = SignedRequest {
        method: q["X-EB-Method"].clone(),
        expires: q["X-EB-Expires"].parse().unwrap(),
        content_type: q["X-EB-Content-Type"].clone(),
        content_length: Some(q["X-EB-Content-Length"].parse().unwrap()),
        signature: q["X-EB-Signature"].clone(),
    };
    let grant = svc
        .signed_grant("web", &key("a b/ü.csv"), "PUT", signed.clone())
        .unwrap();
    assert_eq!(
        grant,
        Grant {
            actor: "signed_url".into(),
            content_type: Some("text/csv".into()),
            content_length: Some(4),
        }
    );
    assert!(matches!(
        svc.signed_grant("web", &key("a b/ü.csv"), "GET", signed.clone()),
        Err(BlobError::SignatureInvalid(m)) if m == "the URL was signed for another method"
    ));
    assert!(svc.signed_grant("img", &key("a b/ü.csv"), "PUT", signed).is_err());
    let recorded = events(&db.pool, "blob:web/a b/ü.csv").await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].0, "blob.presigned");
    assert_eq!(recorded[0].2["signed_by"], "gateway");
    assert_eq!(recorded[0].2["content_length"], 4);
    // A PUT over the namespace's limit, or of a type it refuses, names the field.
    let refused = |method: &str, content_type: Option<&str>, content_length: Option<u64>| {
        let request = PresignRequest {
            key: "p.png".into(),
            method: method.into(),
            expires_in: None,
            content_type: content_type.map(str::to_owned),
            content_length,
        };
        let svc = &svc;
        async move {
            svc.presign("api_key:test", "img", request, "http://x")
                .await
                .err()
                .unwrap()
        }
    };
    assert!(matches!(
        refused("PUT", None, Some(11)).await,
        BlobError::OnField {
            field: "content_length",
            ..
        }
    ));
    assert!(matches!(
        refused("PUT", Some("text/plain"), Some(1)).await,
        BlobError::OnField {
            field: "content_type",
            ..
        }
    ));
    assert!(matches!(
        refused("PUT", None, None).await,
        BlobError::InvalidField {
            field: "content_length",
            ..
        }
    ));
    assert!(matches!(
        refused("POST", None, None).await,
        BlobError::InvalidField { field: "method", .. }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_holds_a_bounded_number_of_open_uploads() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = service(&db.pool, dir.path()).with_max_open_uploads(2);
    let create = |ns: &'static str, k: &str| {
        let request = blob_store::CreateUpload {
            key: k.to_owned(),
            size: 10,
            ..Default::default()
        };
        svc.create_upload("test", ns, request, "http://gw")
    };
    let first = create("web", "a.bin").await.unwrap();
    create("web", "b.bin").await.unwrap();
    let refused = create("web", "c.bin").await.unwrap_err();
    assert!(
        matches!(
            refused,
            BlobError::UploadConflict {
                code: "too_many_uploads",
                ..
            }
        ),
        "{refused:?}"
    );
    // Another namespace has its own count.
    create("img", "a.png").await.unwrap();
    // An aborted upload frees its place.
    svc.abort_upload("web", &first.id).await.unwrap();
    create("web", "c.bin").await.unwrap();
    // Expired ones do not count.
    let later = chrono::Utc::now() + chrono::Duration::hours(25);
    assert_eq!(svc.sweep_uploads(later).await.unwrap(), 3);
}
