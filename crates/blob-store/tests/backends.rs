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

#[tokio::test]
async fn local_tidies_folders_and_refuses_overlong_segments() {
    let (dir, store) = local().await;
    // A key and a "folder" of the same name coexist, as in S3.
    store.put(&k("a"), body(vec![b"1"]), opts(10)).await.unwrap();
    store.put(&k("a/b"), body(vec![b"2"]), opts(10)).await.unwrap();
    assert_eq!(
        (
            read(store.as_ref(), &k("a"), None).await,
            read(store.as_ref(), &k("a/b"), None).await
        ),
        (b"1".to_vec(), b"2".to_vec())
    );
    store.put(&k("x/y/z.txt"), body(vec![b"data"]), opts(10)).await.unwrap();
    assert!(store.delete(&k("x/y/z.txt")).await.unwrap());
    assert!(!dir.path().join("x.d").exists(), "empty folders are tidied away");
    let long = "s".repeat(300);
    assert!(matches!(
        store.put(&k(&long), body(vec![b"1"]), opts(10)).await,
        Err(BlobError::KeyUnsupported(_))
    ));
}

/// One writer's upload: `size` bytes of its own pattern, sent in 8 KiB chunks.
fn upload_of(writer: usize, size: usize) -> Vec<u8> {
    (0..size).map(|i| (writer * 31 + i % 7) as u8).collect()
}

/// Checks that `body` is one whole upload of `uploads` and that `meta` describes it.
fn assert_one_whole_upload(uploads: &[Vec<u8>], meta: &blob_store::ObjectMeta, body: &[u8], when: &str) {
    assert!(
        uploads.iter().any(|u| u.as_slice() == body),
        "{when}: {} bytes that are no single upload",
        body.len()
    );
    assert_eq!(meta.size, body.len() as u64, "{when}: size of another upload");
    let md5: [u8; 16] = Md5::digest(body).into();
    assert_eq!(
        meta.etag,
        format!("\"{}\"", data_encoding::HEXLOWER.encode(&md5)),
        "{when}: ETag of another upload"
    );
    let sha = ring::digest::digest(&ring::digest::SHA256, body);
    assert_eq!(
        meta.sha256,
        data_encoding::HEXLOWER.encode(sha.as_ref()),
        "{when}: SHA-256 of another upload"
    );
}

/// Reads the whole object, tolerating a body cut short (which the assertion then names).
async fn read_whole(store: &dyn BlobStore, key: &ObjectKey) -> (blob_store::ObjectMeta, Vec<u8>) {
    let object = store.get(key, None).await.unwrap();
    let mut body = Vec::new();
    let mut stream = object.body;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => body.extend_from_slice(&c),
            Err(_) => break,
        }
    }
    (object.meta, body)
}

/// Eight writers of different sizes replace one key at once, round after round, through
/// two stores on one folder (two gateway replicas sharing `BLOB_DIR`), while readers read
/// it: every read, and the object after each round, is one whole upload whose size, ETag
/// and SHA-256 are its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_concurrent_writers_and_readers_see_whole_objects() {
    let dir = tempfile::tempdir().unwrap();
    let replicas = [
        Arc::new(LocalStore::new(dir.path()).unwrap()),
        Arc::new(LocalStore::new(dir.path()).unwrap()),
    ];
    let key = k("race/object.bin");
    let uploads: Arc<Vec<Vec<u8>>> = Arc::new((0..8).map(|w| upload_of(w, 1000 + w * 37_000)).collect());
    replicas[0]
        .put(&key, stream::iter(chunked(&uploads[0])).boxed(), opts(u64::MAX))
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (store, key, uploads, stop) = (replicas[r % 2].clone(), key.clone(), uploads.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                let (meta, body) = read_whole(store.as_ref(), &key).await;
                assert_one_whole_upload(&uploads, &meta, &body, "a read racing the writers");
                let head = store.head(&key).await.unwrap();
                assert!(
                    uploads.iter().any(|u| u.len() as u64 == head.size),
                    "HEAD size {}",
                    head.size
                );
                reads += 1;
            }
            reads
        }));
    }
    for round in 0..12 {
        let mut writers = Vec::new();
        for w in 0..8 {
            let (store, key, uploads) = (replicas[w % 2].clone(), key.clone(), uploads.clone());
            writers.push(tokio::spawn(async move {
                store
                    .put(&key, stream::iter(chunked(&uploads[w])).boxed(), opts(u64::MAX))
                    .await
                    .unwrap();
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let (meta, body) = read_whole(replicas[round % 2].as_ref(), &key).await;
        assert_one_whole_upload(&uploads, &meta, &body, &format!("after round {round}"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    assert_eq!(leftovers(dir.path()), 0, "no temporary file is left behind");
}

/// The metadata file of the previous local layout, exactly as that version wrote it:
/// `serde_json::to_vec` of its `ObjectMeta`, whose fields (and their order) are copied here
/// so the bytes stay the old version's whatever becomes of today's type.
#[derive(serde::Serialize)]
struct OldObjectMeta {
    key: String,
    size: u64,
    etag: String,
    content_type: String,
    sha256: String,
    last_modified: chrono::DateTime<chrono::Utc>,
}

/// When the old objects were written (kept as they were, not rewritten on read).
fn old_time() -> chrono::DateTime<chrono::Utc> {
    "2025-11-03T10:20:30Z".parse().unwrap()
}

/// (content file, metadata file) of `key` in the previous layout under `root`.
fn old_paths(root: &std::path::Path, key: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let segments: Vec<&str> = key.split('/').collect();
    let mut dir = root.to_path_buf();
    for s in &segments[..segments.len() - 1] {
        dir.push(format!("{s}.d"));
    }
    let last = segments[segments.len() - 1];
    (dir.join(format!("{last}.obj")), dir.join(format!("{last}.meta")))
}

/// Writes `key` as the previous version of the local store did (before one file held
/// content and metadata): `<segment>.obj` holding the content alone and `<segment>.meta`
/// holding `serde_json::to_vec` of its metadata (`write_body` + `install` of that
/// version). Returns the metadata that version served for it.
fn write_old_layout(root: &std::path::Path, key: &str, content: &[u8], content_type: &str) -> blob_store::ObjectMeta {
    let (data, meta_path) = old_paths(root, key);
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    let md5: [u8; 16] = Md5::digest(content).into();
    let sha = ring::digest::digest(&ring::digest::SHA256, content);
    let old = OldObjectMeta {
        key: key.to_owned(),
        size: content.len() as u64,
        etag: format!("\"{}\"", data_encoding::HEXLOWER.encode(&md5)),
        content_type: content_type.to_owned(),
        sha256: data_encoding::HEXLOWER.encode(sha.as_ref()),
        last_modified: old_time(),
    };
    std::fs::write(&data, content).unwrap();
    std::fs::write(&meta_path, serde_json::to_vec(&old).unwrap()).unwrap();
    blob_store::ObjectMeta {
        key: old.key,
        size: old.size,
        etag: old.etag,
        content_type: old.content_type,
        sha256: old.sha256,
        last_modified: old.last_modified,
    }
}

fn list_all(prefix: &str, delimiter: Option<char>) -> ListOptions {
    ListOptions {
        prefix: prefix.into(),
        delimiter,
        after: None,
        limit: 100,
    }
}

fn listed(meta: &blob_store::ObjectMeta) -> blob_store::ListedObject {
    blob_store::ListedObject {
        key: meta.key.clone(),
        size: meta.size,
        etag: meta.etag.clone(),
        last_modified: meta.last_modified,
    }
}

/// True when the file at `path` is in the current layout (it ends with the trailer's tag).
fn is_new_layout(path: &std::path::Path) -> bool {
    std::fs::read(path).unwrap().ends_with(b"EBOBJv1\n")
}

/// An object written by the previous version (two files) is served as that version served
/// it: the same metadata (size, ETag, SHA-256, type, time), whole and in ranges, listed,
/// and copied.
#[tokio::test]
async fn local_serves_objects_of_the_old_two_file_layout() {
    let (dir, store) = local().await;
    let content = b"hello, old world";
    let old = write_old_layout(dir.path(), "docs/2025/보고서.md", content, "text/markdown");
    let key = k("docs/2025/보고서.md");

    assert_eq!(store.head(&key).await.unwrap(), old, "HEAD of an old-layout object");
    let object = store.get(&key, None).await.unwrap();
    assert_eq!(object.meta, old, "GET's metadata of an old-layout object");
    let whole: Vec<Bytes> = object.body.try_collect().await.unwrap();
    assert_eq!(whole.concat(), content);
    assert_eq!(
        read(store.as_ref(), &key, Some(ByteRange::Inclusive(7, 9))).await,
        b"old"
    );
    assert_eq!(read(store.as_ref(), &key, Some(ByteRange::Suffix(5))).await, b"world");
    assert_eq!(read(store.as_ref(), &key, Some(ByteRange::From(11))).await, b"world");
    assert!(matches!(
        store.get(&key, Some(ByteRange::From(16))).await,
        Err(BlobError::RangeNotSatisfiable { size: 16 })
    ));

    let page = store.list(list_all("docs/", None)).await.unwrap();
    assert_eq!(page.objects, vec![listed(&old)], "the old-layout object is listed");
    let top = store.list(list_all("", Some('/'))).await.unwrap();
    assert_eq!(top.common_prefixes, vec!["docs/".to_owned()]);

    let copied = store.copy(&key, &k("copies/report.md")).await.unwrap();
    assert_eq!(
        (copied.size, &copied.etag, &copied.sha256, &copied.content_type),
        (old.size, &old.etag, &old.sha256, &old.content_type),
        "a copy of an old-layout object keeps its content's metadata"
    );
    assert_eq!(read(store.as_ref(), &k("copies/report.md"), None).await, content);
    assert_eq!(store.head(&k("copies/report.md")).await.unwrap(), copied);
    let (copy_data, copy_meta) = old_paths(dir.path(), "copies/report.md");
    assert!(
        is_new_layout(&copy_data) && !copy_meta.exists(),
        "the copy is written in the new layout"
    );
    assert_eq!(store.head(&key).await.unwrap(), old, "the source is left as it was");
}

/// Writing over an old-layout object leaves one new-layout file and removes the old
/// metadata file; a stale metadata file (a crash between the two steps) is ignored.
#[tokio::test]
async fn local_writing_over_an_old_layout_object_converts_it() {
    let (dir, store) = local().await;
    let old = write_old_layout(dir.path(), "a/b.txt", b"old content", "text/plain");
    let key = k("a/b.txt");
    let (data, meta_path) = old_paths(dir.path(), "a/b.txt");

    let mut create_only = opts(100);
    create_only.if_none_match = true;
    assert!(
        matches!(
            store.put(&key, body(vec![b"other"]), create_only).await,
            Err(BlobError::AlreadyExists)
        ),
        "an old-layout object exists for If-None-Match: *"
    );
    assert_eq!(store.head(&key).await.unwrap(), old);

    let new = store
        .put(&key, body(vec![b"new, longer content"]), opts(100))
        .await
        .unwrap();
    assert!(!meta_path.exists(), "the old metadata file is removed");
    assert!(is_new_layout(&data), "the object is rewritten in the new layout");
    assert_eq!(store.head(&key).await.unwrap(), new);
    assert_eq!(read(store.as_ref(), &key, None).await, b"new, longer content");

    // A crash after the rename and before the removal leaves the old metadata file beside
    // the new object: it describes no byte of it and is ignored.
    std::fs::write(
        &meta_path,
        serde_json::to_vec(&OldObjectMeta {
            key: old.key.clone(),
            size: old.size,
            etag: old.etag.clone(),
            content_type: old.content_type.clone(),
            sha256: old.sha256.clone(),
            last_modified: old.last_modified,
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(store.head(&key).await.unwrap(), new, "a stale metadata file is ignored");
    assert_eq!(read(store.as_ref(), &key, None).await, b"new, longer content");
    assert_eq!(
        store.list(list_all("a/", None)).await.unwrap().objects,
        vec![listed(&new)]
    );
    store.put(&key, body(vec![b"again"]), opts(100)).await.unwrap();
    assert!(!meta_path.exists(), "the next write removes the stale metadata file");
    assert_eq!(leftovers(dir.path()), 0);
}

/// Deleting an old-layout object removes both of its files (and its empty folders).
#[tokio::test]
async fn local_deleting_an_old_layout_object_removes_both_files() {
    let (dir, store) = local().await;
    write_old_layout(dir.path(), "x/y/z.txt", b"data", "text/plain");
    let (data, meta_path) = old_paths(dir.path(), "x/y/z.txt");
    assert!(store.delete(&k("x/y/z.txt")).await.unwrap());
    assert!(!data.exists() && !meta_path.exists(), "both files are removed");
    assert!(!dir.path().join("x.d").exists(), "empty folders are tidied away");
    assert!(matches!(store.head(&k("x/y/z.txt")).await, Err(BlobError::NotFound)));
    assert!(!store.delete(&k("x/y/z.txt")).await.unwrap());

    // A metadata file whose content file is gone (a crash in the middle of a delete) is
    // no object.
    write_old_layout(dir.path(), "gone.txt", b"data", "text/plain");
    let (data, meta_path) = old_paths(dir.path(), "gone.txt");
    std::fs::remove_file(&data).unwrap();
    assert!(matches!(store.head(&k("gone.txt")).await, Err(BlobError::NotFound)));
    assert!(store.list(list_all("", None)).await.unwrap().objects.is_empty());
    assert!(!store.delete(&k("gone.txt")).await.unwrap());
    assert!(
        !meta_path.exists(),
        "deleting the key removes the orphaned metadata file"
    );
}

/// One unreadable file does not fail its folder's listing: it is skipped and the other
/// objects, of both layouts, are listed.
#[tokio::test]
async fn local_listing_skips_unreadable_files() {
    let (dir, store) = local().await;
    let a = store.put(&k("f/a.txt"), body(vec![b"a"]), opts(10)).await.unwrap();
    let c = write_old_layout(dir.path(), "f/c.txt", b"c", "text/plain");
    let e = store.put(&k("f/e.txt"), body(vec![b"e"]), opts(10)).await.unwrap();
    let sub = store.put(&k("f/sub/g.txt"), body(vec![b"g"]), opts(10)).await.unwrap();
    let folder = dir.path().join("f.d");
    // No trailer and no metadata file.
    std::fs::write(folder.join("b.txt.obj"), b"not an object").unwrap();
    // The tag, but a length longer than the file.
    std::fs::write(
        folder.join("d.txt.obj"),
        [b"x".as_slice(), &u64::MAX.to_le_bytes(), b"EBOBJv1\n"].concat(),
    )
    .unwrap();
    // An old-layout object whose metadata file is not JSON.
    std::fs::write(folder.join("f.txt.obj"), b"f").unwrap();
    std::fs::write(folder.join("f.txt.meta"), b"{not json").unwrap();

    let page = store.list(list_all("f/", None)).await.unwrap();
    assert_eq!(
        page.objects,
        vec![listed(&a), listed(&c), listed(&e), listed(&sub)],
        "the readable objects are listed"
    );
    let page = store.list(list_all("f/", Some('/'))).await.unwrap();
    assert_eq!(page.objects, vec![listed(&a), listed(&c), listed(&e)]);
    assert_eq!(page.common_prefixes, vec!["f/sub/".to_owned()]);
    for bad in ["f/b.txt", "f/d.txt", "f/f.txt"] {
        match store.head(&k(bad)).await {
            Err(BlobError::Backend(m)) => assert!(m.contains("corrupt object file"), "{bad}: {m}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

/// Content that ends with bytes shaped like the trailer is told apart from a trailer: the
/// trailer is believed only when its length fits the file and its metadata is an object's
/// describing the bytes before it, and an old-layout object (whose metadata file says the
/// whole file is content, with the whole file's MD5) stays one even when its content is
/// a complete new-layout file.
#[tokio::test]
async fn local_tells_content_ending_like_a_trailer_from_a_trailer() {
    let (dir, store) = local().await;
    let tricky = [b"payload".as_slice(), &7u64.to_le_bytes(), b"EBOBJv1\n"].concat();

    let new = store.put(&k("t/new.bin"), body_of(&tricky), opts(100)).await.unwrap();
    assert_eq!(read(store.as_ref(), &k("t/new.bin"), None).await, tricky);
    assert_eq!(store.head(&k("t/new.bin")).await.unwrap(), new);

    let old = write_old_layout(dir.path(), "t/old.bin", &tricky, "application/octet-stream");
    assert_eq!(
        store.head(&k("t/old.bin")).await.unwrap(),
        old,
        "old content ending in the tag"
    );
    assert_eq!(read(store.as_ref(), &k("t/old.bin"), None).await, tricky);

    // A backup of another store's object file, uploaded whole to the previous version.
    let other = tempfile::tempdir().unwrap();
    let inner = LocalStore::new(other.path()).unwrap();
    let mut html = opts(100);
    html.content_type = "text/html".into();
    inner.put(&k("inner.txt"), body(vec![b"inner"]), html).await.unwrap();
    let file = std::fs::read(other.path().join("inner.txt.obj")).unwrap();
    let nested = write_old_layout(dir.path(), "t/nested.bin", &file, "application/octet-stream");
    assert_eq!(
        store.head(&k("t/nested.bin")).await.unwrap(),
        nested,
        "an old-layout object whose content is a whole new-layout file"
    );
    assert_eq!(read(store.as_ref(), &k("t/nested.bin"), None).await, file);

    // A stale metadata file that gives the new file's whole size but not its MD5 (another
    // content of that length) does not make a new-layout object an old one.
    let (data, meta_path) = old_paths(dir.path(), "t/new.bin");
    let whole = std::fs::read(&data).unwrap();
    let impostor = vec![b'z'; whole.len()];
    let md5: [u8; 16] = Md5::digest(&impostor).into();
    let stale = OldObjectMeta {
        key: "t/new.bin".into(),
        size: whole.len() as u64,
        etag: format!("\"{}\"", data_encoding::HEXLOWER.encode(&md5)),
        content_type: "text/html".into(),
        sha256: String::new(),
        last_modified: old_time(),
    };
    std::fs::write(&meta_path, serde_json::to_vec(&stale).unwrap()).unwrap();
    assert_eq!(
        store.head(&k("t/new.bin")).await.unwrap(),
        new,
        "a stale metadata file of the same size"
    );
    assert_eq!(read(store.as_ref(), &k("t/new.bin"), None).await, tricky);

    // A tag whose metadata is not an object's, with no metadata file: refused, not served.
    let folder = dir.path().join("t.d");
    std::fs::write(
        folder.join("shape.bin.obj"),
        [b"{}".as_slice(), &2u64.to_le_bytes(), b"EBOBJv1\n"].concat(),
    )
    .unwrap();
    std::fs::write(folder.join("short.bin.obj"), b"EBOBJv1\n").unwrap();
    for bad in ["t/shape.bin", "t/short.bin"] {
        match store.get(&k(bad), None).await {
            Err(BlobError::Backend(m)) => assert!(m.contains("corrupt object file"), "{bad}: {m}"),
            Ok(_) => panic!("{bad}: served"),
            Err(e) => panic!("{bad}: {e:?}"),
        }
    }
}

fn body_of(data: &[u8]) -> ByteStream {
    stream::iter(vec![Ok(Bytes::copy_from_slice(data))]).boxed()
}

/// Writers replacing an old-layout object race readers (through two stores on one folder):
/// every read is the old object whole or one whole upload, never an error for a metadata
/// file removed under the reader, and the key ends in the new layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_readers_racing_the_conversion_of_an_old_layout_object_see_whole_objects() {
    let dir = tempfile::tempdir().unwrap();
    let replicas = [
        Arc::new(LocalStore::new(dir.path()).unwrap()),
        Arc::new(LocalStore::new(dir.path()).unwrap()),
    ];
    let key = k("race/old.bin");
    let mut uploads: Vec<Vec<u8>> = (0..4).map(|w| upload_of(w, 500 + w * 20_000)).collect();
    uploads.push(upload_of(9, 3000));
    let uploads = Arc::new(uploads);
    for round in 0..6 {
        write_old_layout(dir.path(), "race/old.bin", &uploads[4], "text/plain");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for r in 0..3 {
            let (store, key, uploads, stop) = (replicas[r % 2].clone(), key.clone(), uploads.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (meta, body) = read_whole(store.as_ref(), &key).await;
                    assert_one_whole_upload(&uploads, &meta, &body, "a read racing the conversion");
                }
            }));
        }
        let mut writers = Vec::new();
        for w in 0..4 {
            let (store, key, uploads) = (replicas[w % 2].clone(), key.clone(), uploads.clone());
            writers.push(tokio::spawn(async move {
                store
                    .put(&key, stream::iter(chunked(&uploads[w])).boxed(), opts(u64::MAX))
                    .await
                    .unwrap();
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
        let (data, meta_path) = old_paths(dir.path(), "race/old.bin");
        assert!(is_new_layout(&data) && !meta_path.exists(), "round {round}: converted");
        let (meta, body) = read_whole(replicas[round % 2].as_ref(), &key).await;
        assert_one_whole_upload(&uploads[..4], &meta, &body, &format!("after round {round}"));
    }
    assert_eq!(leftovers(dir.path()), 0, "no temporary file is left behind");
}

/// A process killed mid-upload (or force-exited at the shutdown deadline) leaves a partial
/// file in `.tmp/`. Opening the store removes such files once they are a day old, and
/// keeps younger ones, which another replica sharing the folder may still be writing.
#[tokio::test]
async fn local_start_up_removes_day_old_temporary_files_only() {
    let dir = tempfile::tempdir().unwrap();
    drop(LocalStore::new(dir.path()).unwrap());
    let tmp = dir.path().join(".tmp");
    let write = |name: &str, age: std::time::Duration| {
        let path = tmp.join(name);
        std::fs::write(&path, b"partial upload").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(std::time::SystemTime::now() - age).unwrap();
        path
    };
    let hour = std::time::Duration::from_secs(3600);
    let stale = write("0190a1b2-stale", 25 * hour);
    let very_stale = write("0190a1b2-very-stale", 30 * 24 * hour);
    let fresh = write("0190a1b2-fresh", std::time::Duration::ZERO);
    let recent = write("0190a1b2-recent", 23 * hour);
    let store = LocalStore::new(dir.path()).unwrap();
    assert!(!stale.exists(), "a temporary file a day old is removed");
    assert!(!very_stale.exists(), "a temporary file a month old is removed");
    assert!(fresh.exists(), "a temporary file being written is kept");
    assert!(recent.exists(), "a temporary file younger than a day is kept");
    // The store works as before.
    store.put(&k("a.txt"), body(vec![b"ab"]), opts(10)).await.unwrap();
    assert_eq!(read(&store, &k("a.txt"), None).await, b"ab");
}
