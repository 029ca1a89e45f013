//! Objects written by the previous local layout (content and metadata in two files).

use super::concurrency::{assert_one_whole_upload, read_whole, upload_of};
use super::*;

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
