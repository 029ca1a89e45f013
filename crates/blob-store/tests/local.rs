//! The local backend's behaviour: atomic, checked writes; ranges; listing; races.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use blob_store::{BlobError, BlobStore, ByteRange, ByteStream, ListOptions, LocalStore, ObjectKey, PutOptions};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use md5::{Digest, Md5};

fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
    stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
}

fn opts(max: u64) -> PutOptions {
    PutOptions {
        content_type: "text/plain".into(),
        max_size: max,
        expected_md5: None,
        expected_sha256: None,
        if_none_match: false,
    }
}

async fn read(store: &LocalStore, key: &ObjectKey, range: Option<ByteRange>) -> Vec<u8> {
    let object = store.get(key, range).await.unwrap();
    let chunks: Vec<Bytes> = object.body.try_collect().await.unwrap();
    chunks.concat()
}

fn k(s: &str) -> ObjectKey {
    ObjectKey::parse(s).unwrap()
}

/// Files left in the store other than finished objects (temporary files).
fn leftovers(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join(".tmp")).unwrap().count()
}

#[tokio::test]
async fn round_trip_with_checksums_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let key = k("보고서/2026/결산.txt");
    let md5: [u8; 16] = Md5::digest(b"hello, world").into();
    let mut o = opts(100);
    o.expected_md5 = Some(md5);
    let meta = store.put(&key, body(vec![b"hello, ", b"world"]), o).await.unwrap();
    assert_eq!(meta.size, 12);
    assert_eq!(meta.etag, format!("\"{}\"", data_encoding::HEXLOWER.encode(&md5)));
    assert_eq!(
        meta.sha256,
        "09ca7e4eaa6e8ae9c7d261167129184883644d07dfba7cbfbc4c8a2e08360d5b"
    );
    assert_eq!(read(&store, &key, None).await, b"hello, world");
    assert_eq!(read(&store, &key, Some(ByteRange::Inclusive(7, 11))).await, b"world");
    assert_eq!(read(&store, &key, Some(ByteRange::Suffix(5))).await, b"world");
    assert_eq!(read(&store, &key, Some(ByteRange::From(5))).await, b", world");
    assert!(matches!(
        store.get(&key, Some(ByteRange::From(12))).await,
        Err(BlobError::RangeNotSatisfiable { size: 12 })
    ));
    assert_eq!(store.head(&key).await.unwrap(), meta);
    assert_eq!(leftovers(dir.path()), 0);
}

#[tokio::test]
async fn failed_writes_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let key = k("a/b.bin");
    assert!(matches!(
        store.put(&key, body(vec![b"12345", b"67890"]), opts(8)).await,
        Err(BlobError::TooLarge { limit: 8 })
    ));
    let mut o = opts(100);
    o.expected_md5 = Some([0; 16]);
    assert!(matches!(
        store.put(&key, body(vec![b"x"]), o).await,
        Err(BlobError::ChecksumMismatch("Content-MD5"))
    ));
    let mut o = opts(100);
    o.expected_sha256 = Some([0; 32]);
    assert!(matches!(
        store.put(&key, body(vec![b"x"]), o).await,
        Err(BlobError::ChecksumMismatch("SHA-256"))
    ));
    let broken: ByteStream = stream::iter(vec![
        Ok(Bytes::from_static(b"part")),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    assert!(matches!(
        store.put(&key, broken, opts(100)).await,
        Err(BlobError::Interrupted(_))
    ));
    assert!(matches!(store.head(&key).await, Err(BlobError::NotFound)));
    assert_eq!(leftovers(dir.path()), 0);

    // A failed overwrite keeps the old object whole.
    store.put(&key, body(vec![b"old"]), opts(100)).await.unwrap();
    assert!(store.put(&key, body(vec![b"new-but-too-long"]), opts(5)).await.is_err());
    assert_eq!(read(&store, &key, None).await, b"old");
}

#[tokio::test]
async fn create_only_lets_exactly_one_racer_win() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()).unwrap());
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut o = opts(100);
            o.if_none_match = true;
            let data: ByteStream = stream::iter(vec![Ok(Bytes::from(vec![b'a' + i; 10]))]).boxed();
            store.put(&k("race/winner"), data, o).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(BlobError::AlreadyExists) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    let content = read(&store, &k("race/winner"), None).await;
    assert!(content.iter().all(|&b| b == content[0]), "one writer's bytes, whole");
}

#[tokio::test]
async fn listing_with_prefix_delimiter_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    for key in ["a", "a/b", "a/c/d", "a/c/e", "ab", "b/x", "한글/파일"] {
        store.put(&k(key), body(vec![b"1"]), opts(10)).await.unwrap();
    }
    let all = store
        .list(ListOptions {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<&str> = all.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["a", "a/b", "a/c/d", "a/c/e", "ab", "b/x", "한글/파일"]);

    let top = store
        .list(ListOptions {
            delimiter: Some('/'),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        top.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["a", "ab"]
    );
    assert_eq!(top.common_prefixes, ["a/", "b/", "한글/"]);

    let under_a = store
        .list(ListOptions {
            prefix: "a/".into(),
            delimiter: Some('/'),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        under_a.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["a/b"]
    );
    assert_eq!(under_a.common_prefixes, ["a/c/"]);

    let partial = store
        .list(ListOptions {
            prefix: "a/c/".into(),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(partial.objects.len(), 2);

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(ListOptions {
                after: after.clone(),
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
}

#[tokio::test]
async fn delete_copy_and_unsupported_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    store.put(&k("x/y/z.txt"), body(vec![b"data"]), opts(10)).await.unwrap();
    let copied = store.copy(&k("x/y/z.txt"), &k("copy.txt")).await.unwrap();
    assert_eq!((copied.key.as_str(), copied.size), ("copy.txt", 4));
    assert_eq!(read(&store, &k("copy.txt"), None).await, b"data");
    assert!(store.delete(&k("x/y/z.txt")).await.unwrap());
    assert!(!store.delete(&k("x/y/z.txt")).await.unwrap());
    assert!(!dir.path().join("x.d").exists(), "empty folders are tidied away");
    assert!(matches!(
        store.copy(&k("nope"), &k("n2")).await,
        Err(BlobError::NotFound)
    ));
    let long = "s".repeat(300);
    assert!(matches!(
        store.put(&k(&long), body(vec![b"1"]), opts(10)).await,
        Err(BlobError::KeyUnsupported(_))
    ));
}
