//! The local backend's own cases: tidy folders, overlong segments, and writers and
//! readers of one key at once.

use super::*;

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
pub(super) fn upload_of(writer: usize, size: usize) -> Vec<u8> {
    (0..size).map(|i| (writer * 31 + i % 7) as u8).collect()
}

/// Checks that `body` is one whole upload of `uploads` and that `meta` describes it.
pub(super) fn assert_one_whole_upload(uploads: &[Vec<u8>], meta: &blob_store::ObjectMeta, body: &[u8], when: &str) {
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
pub(super) async fn read_whole(store: &dyn BlobStore, key: &ObjectKey) -> (blob_store::ObjectMeta, Vec<u8>) {
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
