//! The same behaviour tests on both backends: the local folder and S3 (a real S3 API
//! served in this process by `s3s` + `s3s-fs`), plus each backend's own cases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use blob_store::{
    BlobError, BlobStore, ByteRange, ByteStream, IfMatch, ListOptions, LocalStore, MIN_PART_SIZE, ObjectKey,
    PutOptions, S3Store,
};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use md5::{Digest, Md5};

mod concurrency;
mod old_layout;

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
        if_match: None,
    }
}

async fn read(store: &dyn BlobStore, key: &ObjectKey, range: Option<ByteRange>) -> Vec<u8> {
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

/// A real S3 API in this process, and a store on its bucket.
async fn s3(part_size: usize) -> (blob_store::testing::S3TestServer, Arc<S3Store>) {
    let server = blob_store::testing::S3TestServer::start().await;
    let store = Arc::new(S3Store::new(&server.config(part_size)));
    (server, store)
}

async fn local() -> (tempfile::TempDir, Arc<LocalStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()).unwrap());
    (dir, store)
}

async fn round_trip_with_checksums_and_ranges(store: &dyn BlobStore) {
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
    assert_eq!(read(store, &key, None).await, b"hello, world");
    assert_eq!(read(store, &key, Some(ByteRange::Inclusive(7, 11))).await, b"world");
    assert_eq!(read(store, &key, Some(ByteRange::Suffix(5))).await, b"world");
    assert_eq!(read(store, &key, Some(ByteRange::From(5))).await, b", world");
    assert!(matches!(
        store.get(&key, Some(ByteRange::From(12))).await,
        Err(BlobError::RangeNotSatisfiable { size: 12 })
    ));
    assert_eq!(store.head(&key).await.unwrap(), meta);
}

async fn failed_writes_leave_nothing_behind(store: &dyn BlobStore) {
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

    // A failed overwrite keeps the old object whole.
    store.put(&key, body(vec![b"old"]), opts(100)).await.unwrap();
    assert!(store.put(&key, body(vec![b"new-but-too-long"]), opts(5)).await.is_err());
    assert_eq!(read(store, &key, None).await, b"old");
}

#[tokio::test]
async fn local_create_only_lets_exactly_one_racer_win() {
    let (_dir, store) = local().await;
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
    let content = read(store.as_ref(), &k("race/winner"), None).await;
    assert!(content.iter().all(|&b| b == content[0]), "one writer's bytes, whole");
}

async fn listing_with_prefix_delimiter_and_pages(store: &dyn BlobStore) {
    for key in ["a", "a-dir/b", "a-dir/c/d", "a-dir/c/e", "ab", "b/x", "한글/파일"] {
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
    assert_eq!(
        keys,
        ["a", "a-dir/b", "a-dir/c/d", "a-dir/c/e", "ab", "b/x", "한글/파일"]
    );

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
    assert_eq!(top.common_prefixes, ["a-dir/", "b/", "한글/"]);

    let under_a = store
        .list(ListOptions {
            prefix: "a-dir/".into(),
            delimiter: Some('/'),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        under_a.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["a-dir/b"]
    );
    assert_eq!(under_a.common_prefixes, ["a-dir/c/"]);

    let partial = store
        .list(ListOptions {
            prefix: "a-dir/c/".into(),
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

async fn delete_and_copy(store: &dyn BlobStore) {
    store.put(&k("x/y/z.txt"), body(vec![b"data"]), opts(10)).await.unwrap();
    let copied = store.copy(&k("x/y/z.txt"), &k("copy.txt")).await.unwrap();
    assert_eq!((copied.key.as_str(), copied.size), ("copy.txt", 4));
    assert_eq!(read(store, &k("copy.txt"), None).await, b"data");
    assert!(store.delete(&k("x/y/z.txt")).await.unwrap());
    assert!(!store.delete(&k("x/y/z.txt")).await.unwrap());
    assert!(matches!(
        store.copy(&k("nope"), &k("n2")).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        store.get(&k("x/y/z.txt"), None).await,
        Err(BlobError::NotFound)
    ));
}

fn chunked(data: &[u8]) -> Vec<Result<Bytes, std::io::Error>> {
    data.chunks(100_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect()
}

/// Bodies above the part size go up in parts and come back whole; a failure midway
/// leaves no object.
async fn multipart_bodies(store: &dyn BlobStore, part: usize) {
    let data: Vec<u8> = (0..(part * 2 + 12_345)).map(|i| (i % 249) as u8).collect();
    let sha = ring::digest::digest(&ring::digest::SHA256, &data);
    let mut o = opts(u64::MAX);
    o.expected_sha256 = Some(sha.as_ref().try_into().unwrap());
    let meta = store
        .put(&k("big/model.bin"), stream::iter(chunked(&data)).boxed(), o)
        .await
        .unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(meta.sha256, data_encoding::HEXLOWER.encode(sha.as_ref()));
    assert_eq!(read(store, &k("big/model.bin"), None).await, data);
    let around = ByteRange::Inclusive(part as u64 - 2, part as u64 + 1);
    assert_eq!(
        read(store, &k("big/model.bin"), Some(around)).await,
        &data[part - 2..part + 2]
    );

    // Interrupted after more than a part: nothing stored.
    let mut failing = chunked(&data);
    failing.truncate(failing.len() - 3);
    failing.push(Err(std::io::Error::other("connection reset")));
    let r = store
        .put(&k("big/broken.bin"), stream::iter(failing).boxed(), opts(u64::MAX))
        .await;
    assert!(matches!(r, Err(BlobError::Interrupted(_))), "{r:?}");
    assert!(matches!(
        store.head(&k("big/broken.bin")).await,
        Err(BlobError::NotFound)
    ));
    // Too large after more than a part: nothing stored.
    let r = store
        .put(
            &k("big/huge.bin"),
            stream::iter(chunked(&data)).boxed(),
            opts((part + 10) as u64),
        )
        .await;
    assert!(matches!(r, Err(BlobError::TooLarge { .. })), "{r:?}");
    assert!(matches!(store.head(&k("big/huge.bin")).await, Err(BlobError::NotFound)));
    // A wrong checksum, known only at the end: nothing stored.
    let mut o = opts(u64::MAX);
    o.expected_sha256 = Some([7; 32]);
    let r = store
        .put(&k("big/wrong.bin"), stream::iter(chunked(&data)).boxed(), o)
        .await;
    assert!(matches!(r, Err(BlobError::ChecksumMismatch(_))), "{r:?}");
    assert!(matches!(
        store.head(&k("big/wrong.bin")).await,
        Err(BlobError::NotFound)
    ));
}

async fn create_only(store: &dyn BlobStore) {
    let mut o = opts(10);
    o.if_none_match = true;
    store.put(&k("once"), body(vec![b"1"]), o.clone()).await.unwrap();
    assert!(matches!(
        store.put(&k("once"), body(vec![b"2"]), o).await,
        Err(BlobError::AlreadyExists)
    ));
    assert_eq!(read(store, &k("once"), None).await, b"1");
}

fn precondition_failed(result: Result<impl std::fmt::Debug, BlobError>, current: Option<&str>) {
    match result {
        Err(BlobError::PreconditionFailed { current: c }) => assert_eq!(c.as_deref(), current),
        other => panic!("expected a failed precondition, got {other:?}"),
    }
}

/// `If-Match` on writes and deletes: another ETag, a weak one or a missing object fail and
/// change nothing; the current one (or `*`) succeeds.
async fn conditional_writes_and_deletes(store: &dyn BlobStore) {
    let key = k("cond/doc.txt");
    let with = |cond: IfMatch| {
        let mut o = opts(100);
        o.if_match = Some(cond);
        o
    };
    let tags = |t: &[&str]| IfMatch::Tags(t.iter().map(|s| (*s).to_owned()).collect());
    precondition_failed(store.put(&key, body(vec![b"v0"]), with(IfMatch::Any)).await, None);
    assert!(
        matches!(store.head(&key).await, Err(BlobError::NotFound)),
        "nothing created"
    );
    let v1 = store.put(&key, body(vec![b"v1"]), opts(100)).await.unwrap();
    let weak = format!("W/{}", v1.etag);
    for cond in [tags(&["\"deadbeef\""]), tags(&[&weak])] {
        precondition_failed(
            store.put(&key, body(vec![b"lost"]), with(cond.clone())).await,
            Some(&v1.etag),
        );
        precondition_failed(store.delete_if(&key, Some(&cond)).await, Some(&v1.etag));
    }
    assert_eq!(read(store, &key, None).await, b"v1", "nothing changed");
    let v2 = store
        .put(&key, body(vec![b"v2"]), with(tags(&["\"deadbeef\"", &v1.etag])))
        .await
        .unwrap();
    assert_eq!(read(store, &key, None).await, b"v2");
    let v3 = store.put(&key, body(vec![b"v3"]), with(IfMatch::Any)).await.unwrap();
    assert_eq!(read(store, &key, None).await, b"v3");
    precondition_failed(store.delete_if(&key, Some(&tags(&[&v2.etag]))).await, Some(&v3.etag));
    assert!(store.delete_if(&key, Some(&tags(&[&v3.etag]))).await.unwrap());
    assert!(matches!(store.head(&key).await, Err(BlobError::NotFound)));
    precondition_failed(store.delete_if(&key, Some(&IfMatch::Any)).await, None);
}

/// Conditional writers that all hold the same ETag: one replaces it, the others find it
/// gone, so no update is lost (the check and the rename share one lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_if_match_lets_exactly_one_racer_win() {
    let (_dir, store) = local().await;
    let key = k("race/versioned");
    let v0 = store.put(&key, body(vec![b"v0"]), opts(100)).await.unwrap();
    for round in 0..5 {
        let current = store.head(&key).await.unwrap().etag;
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let (store, key, current) = (store.clone(), key.clone(), current.clone());
            tasks.push(tokio::spawn(async move {
                let mut o = opts(1 << 20);
                o.if_match = Some(IfMatch::Tags(vec![current]));
                // Distinct content per writer and round, so every version has its own ETag.
                let data = vec![b'a' + i; 64 * 1024 + round];
                store
                    .put(&key, stream::iter(vec![Ok(Bytes::from(data))]).boxed(), o)
                    .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(BlobError::PreconditionFailed { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
    assert_ne!(store.head(&key).await.unwrap().etag, v0.etag);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_local {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                let (dir, store) = super::local().await;
                super::$name(store.as_ref()).await;
                assert_eq!(super::leftovers(dir.path()), 0, "no temporary file is left behind");
            })*
        }
        mod on_s3 {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                let (_dir, store) = super::s3(super::MIN_PART_SIZE).await;
                super::$name(store.as_ref()).await;
            })*
        }
    };
}

on_both_backends!(
    round_trip_with_checksums_and_ranges,
    failed_writes_leave_nothing_behind,
    listing_with_prefix_delimiter_and_pages,
    delete_and_copy,
    create_only,
    conditional_writes_and_deletes,
);

#[tokio::test(flavor = "multi_thread")]
async fn multipart_on_both_backends() {
    let (_d, s3) = s3(MIN_PART_SIZE).await;
    multipart_bodies(s3.as_ref(), MIN_PART_SIZE).await;
    let (_d, local) = local().await;
    multipart_bodies(local.as_ref(), MIN_PART_SIZE).await;
}

/// Multipart uploads the S3 test server still holds (its `.upload*` files).
fn open_uploads(root: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload"))
        .collect()
}

/// The connection to S3 dropping mid-upload, in a single PUT or in a part of a multipart
/// upload: the put fails as a backend error, nothing is half-written (the old object stays
/// whole, the multipart upload is aborted), and once S3 is reachable the upload succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn s3_connections_dropped_mid_upload_leave_nothing_half_written() {
    use shared_db::testing::fault::{Fault, FaultProxy};
    let server = blob_store::testing::S3TestServer::start().await;
    let proxy = FaultProxy::start(&server.endpoint).await;
    let store = S3Store::new(&blob_store::S3Config {
        endpoint: Some(proxy.url()),
        ..server.config(MIN_PART_SIZE)
    });
    let key = k("drop/object.bin");
    store.put(&key, body(vec![b"old"]), opts(u64::MAX)).await.unwrap();
    let single: Vec<u8> = (0..300_000).map(|i| (i % 253) as u8).collect();
    let multipart: Vec<u8> = (0..MIN_PART_SIZE * 2 + 10).map(|i| (i % 251) as u8).collect();
    for data in [&single, &multipart] {
        // Every connection is cut 100 kB into its request: past any request head, inside
        // every body (the SDK's own retries are cut too).
        proxy.set(Fault::CutAfter(100_000));
        let before = proxy.accepted();
        let r = store
            .put(&key, stream::iter(chunked(data)).boxed(), opts(u64::MAX))
            .await;
        assert!(matches!(r, Err(BlobError::Backend(_))), "{r:?}");
        assert!(proxy.accepted() > before, "the upload went through the proxy");
        proxy.set(Fault::Pass);
        assert_eq!(read(&store, &key, None).await, b"old", "the old object is whole");
        assert!(
            open_uploads(server.dir.path()).is_empty(),
            "{:?}",
            open_uploads(server.dir.path())
        );

        let meta = store
            .put(&key, stream::iter(chunked(data)).boxed(), opts(u64::MAX))
            .await
            .unwrap();
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(&read(&store, &key, None).await, data);
        store.put(&key, body(vec![b"old"]), opts(u64::MAX)).await.unwrap();
    }
    // S3 refusing connections or never answering: requests fail the same clean way.
    let impatient = S3Store::new(&blob_store::S3Config {
        endpoint: Some(proxy.url()),
        timeout: std::time::Duration::from_secs(1),
        ..server.config(MIN_PART_SIZE)
    });
    for fault in [Fault::Refuse, Fault::Stall] {
        proxy.set(fault);
        assert!(matches!(impatient.get(&key, None).await, Err(BlobError::Backend(_))));
        assert!(matches!(
            impatient.put(&key, body(vec![b"new"]), opts(10)).await,
            Err(BlobError::Backend(_))
        ));
    }
    proxy.set(Fault::Pass);
    assert_eq!(read(&impatient, &key, None).await, b"old");
}

/// The local store's multipart uploads at the store's level: parts replace themselves,
/// bodies of another length are refused, a wrong SHA-256 stores nothing and keeps the
/// parts, a good assembly installs the object and removes the parts.
#[tokio::test(flavor = "multi_thread")]
async fn local_multipart_parts_assemble_into_one_object() {
    use blob_store::Assembly;
    let (dir, store) = local().await;
    let key = k("models/m.bin");
    let id = store
        .multipart_create(&key, "application/octet-stream", None)
        .await
        .unwrap();
    assert!(store.multipart_parts(&key, &id).await.unwrap().is_empty());
    assert!(
        store
            .multipart_part_url(&key, &id, 1, 5, std::time::Duration::from_secs(60))
            .await
            .unwrap()
            .is_none(),
        "the gateway signs the local store's part URLs"
    );
    let first = store
        .multipart_put_part(&key, &id, 1, 5, body(vec![b"xxxxx"]))
        .await
        .unwrap();
    let again = store
        .multipart_put_part(&key, &id, 1, 5, body(vec![b"he", b"llo"]))
        .await
        .unwrap();
    assert_ne!(first.etag, again.etag);
    let md5: [u8; 16] = Md5::digest(b"hello").into();
    assert_eq!(again.etag, format!("\"{}\"", hex(&md5)));
    let second = store
        .multipart_put_part(&key, &id, 2, 6, body(vec![b" world"]))
        .await
        .unwrap();
    assert!(matches!(
        store.multipart_put_part(&key, &id, 3, 2, body(vec![b"abc"])).await,
        Err(BlobError::TooLarge { limit: 2 })
    ));
    assert!(matches!(
        store.multipart_put_part(&key, &id, 3, 4, body(vec![b"abc"])).await,
        Err(BlobError::Interrupted(_))
    ));
    let parts = store.multipart_parts(&key, &id).await.unwrap();
    assert_eq!(parts, [again.clone(), second.clone()], "one copy of part 1, no part 3");
    let assembly = |sha256: [u8; 32]| Assembly {
        parts: vec![again.clone(), second.clone()],
        content_type: "application/octet-stream".into(),
        size: 11,
        sha256: Some(sha256),
    };
    let right: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, b"hello world")
        .as_ref()
        .try_into()
        .unwrap();
    assert!(matches!(
        store.multipart_complete(&key, &id, assembly([0; 32])).await,
        Err(BlobError::UploadRefused {
            code: "checksum_mismatch",
            ..
        })
    ));
    assert!(matches!(store.head(&key).await, Err(BlobError::NotFound)));
    let short = Assembly {
        size: 12,
        ..assembly(right)
    };
    assert!(matches!(
        store.multipart_complete(&key, &id, short).await,
        Err(BlobError::UploadRefused {
            code: "size_mismatch",
            ..
        })
    ));
    let stale = Assembly {
        parts: vec![first.clone(), second.clone()],
        ..assembly(right)
    };
    assert!(matches!(
        store.multipart_complete(&key, &id, stale).await,
        Err(BlobError::UploadRefused {
            code: "invalid_parts",
            ..
        })
    ));
    let meta = store.multipart_complete(&key, &id, assembly(right)).await.unwrap();
    assert_eq!((meta.size, meta.sha256.as_str()), (11, hex(&right).as_str()));
    assert_eq!(read(store.as_ref(), &key, None).await, b"hello world");
    assert!(matches!(
        store.multipart_parts(&key, &id).await,
        Err(BlobError::UploadNotFound)
    ));
    store.multipart_abort(&key, &id).await.unwrap();
    let other = store.multipart_create(&key, "text/plain", None).await.unwrap();
    store
        .multipart_put_part(&key, &other, 1, 1, body(vec![b"x"]))
        .await
        .unwrap();
    store.multipart_abort(&key, &other).await.unwrap();
    assert!(matches!(
        store.multipart_parts(&key, &other).await,
        Err(BlobError::UploadNotFound)
    ));
    assert_eq!(leftovers(dir.path()), 0);
    assert_eq!(
        std::fs::read_dir(dir.path().join(".uploads")).unwrap().count(),
        0,
        "no upload left"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
