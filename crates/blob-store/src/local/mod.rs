//! The local file-system backend (the embedded default).
//!
//! Layout under the root: a key's segments become folders named `<segment>.d`, and the
//! last segment the file `<segment>.obj`, so `a` and `a/b` can both exist. One file holds
//! one version whole: the content, then its JSON metadata, then a 16-byte trailer (the
//! metadata's length, little-endian, and a magic tag). A write fills a file in `.tmp/`
//! and renames it into place, so content and metadata change together in one atomic step:
//! concurrent writers (in this process or in other gateway replicas sharing the folder)
//! each replace the whole object, and a reader, which reads metadata and content through
//! the one file it opened, always sees one whole version even while it is replaced.
//! `If-None-Match: *` uses a hard link, which fails when the object exists, so two racing
//! creators cannot both win. `If-Match` is checked once before the body is read (a
//! refused write reads nothing) and again just before the rename, under a per-key lock
//! that every rename and delete of this store takes: within one process the check and
//! the change are atomic. Processes sharing the folder do not share that lock, so across
//! replicas a write or delete racing a conditional one between its check and its rename
//! can be overwritten by it (the window is one metadata read long). A process that dies mid-write leaves its partial file in
//! `.tmp/`; opening the store removes those older than [`STALE_TEMP_FILE_AGE`].
//!
//! Folders written by the previous version keep working. That version kept an object in
//! two files: `<segment>.obj` (the content alone) and `<segment>.meta` (its metadata as
//! JSON). A `.obj` without a valid trailer that has such a `.meta` beside it is read as
//! that version served it; writing the key replaces it with a one-file object and then
//! removes the `.meta`, and deleting it removes both. How the two layouts are told apart
//! is explained at [`LocalStore::open_once`].

mod file;
pub(crate) mod multipart;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use ring::digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use self::file::Opened;
use crate::ObjectKey;
use crate::model::{Assembly, PresignedUrl, ReceivedPart};
use crate::{
    BlobError, BlobStore, ByteRange, ByteStream, IfMatch, ListOptions, ListPage, ListedObject, ObjectBody, ObjectMeta,
    PutOptions,
};

/// Longest file name segment (bytes) most file systems take, less our suffix.
const MAX_SEGMENT_BYTES: usize = 250;

/// How old a temporary file must be before start-up removes it as the leftover of an
/// upload whose process died (killed, or force-exited at the shutdown deadline). Replicas
/// may share the folder, so a younger file may be another process's upload in progress:
/// a file being written has its modification time renewed by every write, so only an
/// upload that wrote nothing for this long (long past any body timeout) is taken.
pub const STALE_TEMP_FILE_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How many locks the keys share (by hash): enough that unrelated keys rarely wait.
const KEY_LOCKS: usize = 64;

/// Objects in a folder.
pub struct LocalStore {
    root: PathBuf,
    /// Held across a conditional check and the rename or delete it guards, and by every
    /// rename and delete, so nothing of this process changes a key between the two.
    locks: Box<[tokio::sync::Mutex<()>]>,
}

fn io(e: std::io::Error) -> BlobError {
    BlobError::Backend(e.to_string())
}

fn corrupt(path: &Path, why: &str) -> BlobError {
    BlobError::Backend(format!("corrupt object file {}: {why}", path.display()))
}

impl LocalStore {
    /// The folder of the temporary files of a store rooted at `root` (`root/.tmp`).
    /// Start-up removes files there left unmodified for [`STALE_TEMP_FILE_AGE`], so
    /// other temporary files of uploads to this store may live there too.
    pub fn temp_folder(root: &Path) -> PathBuf {
        root.join(".tmp")
    }

    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        let tmp = Self::temp_folder(&root);
        std::fs::create_dir_all(&tmp).map_err(io)?;
        let removed = Self::remove_stale_temp_files(&tmp, std::time::SystemTime::now());
        tracing::info!(
            removed,
            folder = %tmp.display(),
            "removed temporary files of interrupted uploads (older than {} h)",
            STALE_TEMP_FILE_AGE.as_secs() / 3600
        );
        Ok(Self {
            root,
            locks: (0..KEY_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }

    /// The lock guarding `key`'s changes in this process.
    async fn lock(&self, key: &ObjectKey) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.as_str().hash(&mut h);
        let i = usize::try_from(h.finish() % KEY_LOCKS as u64).unwrap_or(0);
        self.locks[i].lock().await
    }

    /// Removes the regular files in `tmp` last modified [`STALE_TEMP_FILE_AGE`] or more
    /// before `now`, and returns how many it removed. Nothing here fails start-up: a file
    /// or folder it cannot read or remove is logged and left (one another replica removed
    /// or renamed meanwhile is simply gone).
    fn remove_stale_temp_files(tmp: &Path, now: std::time::SystemTime) -> usize {
        let entries = match std::fs::read_dir(tmp) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(folder = %tmp.display(), error = %e, "could not read the temporary folder to tidy it");
                return 0;
            }
        };
        let mut removed = 0;
        for entry in entries {
            let stale = entry.and_then(|entry| {
                let meta = entry.metadata()?;
                let age = now.duration_since(meta.modified()?).unwrap_or_default();
                Ok((meta.is_file() && age >= STALE_TEMP_FILE_AGE).then(|| entry.path()))
            });
            let path = match stale {
                Ok(Some(path)) => path,
                Ok(None) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(folder = %tmp.display(), error = %e, "could not check a temporary file's age");
                    continue;
                }
            };
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "could not remove a stale temporary file"),
            }
        }
        removed
    }

    /// (folder, object file, the previous layout's metadata file) of `key`.
    fn paths(&self, key: &ObjectKey) -> Result<(PathBuf, PathBuf, PathBuf), BlobError> {
        let segments: Vec<&str> = key.segments().collect();
        if let Some(long) = segments.iter().find(|s| s.len() > MAX_SEGMENT_BYTES) {
            return Err(BlobError::KeyUnsupported(format!(
                "a segment of {} bytes; the local store takes at most {MAX_SEGMENT_BYTES}",
                long.len()
            )));
        }
        let mut dir = self.root.clone();
        for s in &segments[..segments.len() - 1] {
            dir.push(format!("{s}.d"));
        }
        let last = segments[segments.len() - 1];
        Ok((
            dir.clone(),
            dir.join(format!("{last}.obj")),
            dir.join(format!("{last}.meta")),
        ))
    }

    fn tmp(&self) -> PathBuf {
        Self::temp_folder(&self.root).join(uuid::Uuid::now_v7().to_string())
    }

    /// Writes the whole object file (content, metadata, trailer) to `tmp`.
    async fn write_object(
        &self,
        tmp: &Path,
        key: &ObjectKey,
        mut body: ByteStream,
        options: &PutOptions,
    ) -> Result<ObjectMeta, BlobError> {
        let mut file = tokio::fs::File::create(tmp).await.map_err(io)?;
        let mut sha = digest::Context::new(&digest::SHA256);
        let mut md5 = Md5::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Interrupted(e.to_string()))?;
            size += chunk.len() as u64;
            if size > options.max_size {
                return Err(BlobError::TooLarge {
                    limit: options.max_size,
                });
            }
            sha.update(&chunk);
            md5.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        let sha = sha.finish();
        let md5: [u8; 16] = md5.finalize().into();
        if options.expected_md5.is_some_and(|want| want != md5) {
            return Err(BlobError::ChecksumMismatch("Content-MD5"));
        }
        if options
            .expected_sha256
            .is_some_and(|want| want.as_slice() != sha.as_ref())
        {
            return Err(BlobError::ChecksumMismatch("SHA-256"));
        }
        let meta = ObjectMeta {
            key: key.as_str().to_owned(),
            size,
            etag: format!("\"{}\"", data_encoding::HEXLOWER.encode(&md5)),
            content_type: options.content_type.clone(),
            sha256: data_encoding::HEXLOWER.encode(sha.as_ref()),
            last_modified: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0),
        };
        Self::finish(&mut file, &meta).await?;
        Ok(meta)
    }

    /// Puts the finished file `tmp` in place of `key`'s: one rename (or, create-only, one
    /// hard link that fails when the object exists), then removes the key's metadata file
    /// of the previous layout, if any.
    ///
    /// The order matters when the key holds a previous-layout object. Until the rename,
    /// readers see the old object whole (its content file and its metadata file). From
    /// the rename on, the object file ends with a valid trailer, which readers believe
    /// over a metadata file beside it (see [`Self::open_once`]), so a crash before the
    /// removal leaves the new object readable and the stale metadata file ignored (and
    /// removed by the next write or delete). Removing the metadata file first would let
    /// a crash leave old content with no metadata: an unreadable key.
    ///
    /// With `if_match`, the current version is checked under the key's lock, which is
    /// held until the rename is done.
    async fn install(
        &self,
        key: &ObjectKey,
        tmp: &Path,
        create_only: bool,
        if_match: Option<&IfMatch>,
    ) -> Result<(), BlobError> {
        let (dir, data, legacy_meta) = self.paths(key)?;
        let _guard = self.lock(key).await;
        if let Some(cond) = if_match {
            cond.check(Self::open(&data, &legacy_meta).await.map(|o| o.meta))?;
        }
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        if create_only {
            tokio::fs::hard_link(tmp, &data).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    BlobError::AlreadyExists
                } else {
                    io(e)
                }
            })?;
            let _ = tokio::fs::remove_file(tmp).await;
        } else {
            tokio::fs::rename(tmp, &data).await.map_err(io)?;
        }
        Self::remove_legacy_meta(key.as_str(), &legacy_meta).await;
        Ok(())
    }

    /// Keys (with their object file and previous-layout metadata file) under `dir`, whose
    /// key prefix is `key_prefix`. A sub-folder that cannot be read is skipped with a
    /// warning rather than failing the listing; `dir` itself must be readable.
    fn walk(
        dir: &Path,
        key_prefix: &str,
        recursive: bool,
        out: &mut Vec<(String, Option<(PathBuf, PathBuf)>)>,
    ) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(segment) = name.strip_suffix(".d") {
                let prefix = format!("{key_prefix}{segment}/");
                if recursive {
                    if let Err(e) = Self::walk(&entry.path(), &prefix, true, out) {
                        tracing::warn!(prefix = %prefix, error = %e, "listing skips a folder it cannot read");
                    }
                } else {
                    out.push((prefix, None));
                }
            } else if let Some(segment) = name.strip_suffix(".obj") {
                let legacy_meta = entry.path().with_file_name(format!("{segment}.meta"));
                out.push((format!("{key_prefix}{segment}"), Some((entry.path(), legacy_meta))));
            }
        }
        Ok(())
    }
}

impl BlobStore for LocalStore {
    fn put<'a>(
        &'a self,
        key: &'a ObjectKey,
        body: ByteStream,
        options: PutOptions,
    ) -> BoxFuture<'a, Result<ObjectMeta, BlobError>> {
        Box::pin(async move {
            let (_, data, legacy_meta) = self.paths(key)?;
            // Checked first so that a refused write reads no body, and again at the rename.
            if let Some(cond) = &options.if_match {
                cond.check(Self::open(&data, &legacy_meta).await.map(|o| o.meta))?;
            }
            if options.if_none_match && tokio::fs::try_exists(&data).await.map_err(io)? {
                return Err(BlobError::AlreadyExists);
            }
            let tmp = self.tmp();
            let result = match self.write_object(&tmp, key, body, &options).await {
                Ok(meta) => self
                    .install(key, &tmp, options.if_none_match, options.if_match.as_ref())
                    .await
                    .map(|()| meta),
                Err(e) => Err(e),
            };
            if result.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            result
        })
    }

    fn get<'a>(&'a self, key: &'a ObjectKey, range: Option<ByteRange>) -> BoxFuture<'a, Result<ObjectBody, BlobError>> {
        Box::pin(async move {
            let (_, data, legacy_meta) = self.paths(key)?;
            let Opened { meta, mut file } = Self::open(&data, &legacy_meta).await?;
            let span = match range {
                Some(r) => Some(
                    r.resolve(meta.size)
                        .ok_or(BlobError::RangeNotSatisfiable { size: meta.size })?,
                ),
                None => None,
            };
            let (start, len) = match span {
                Some((first, last)) => (first, last - first + 1),
                None => (0, meta.size),
            };
            file.seek(std::io::SeekFrom::Start(start)).await.map_err(io)?;
            let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024)
                .map_ok(Bytes::from)
                .boxed();
            Ok(ObjectBody {
                meta,
                range: span,
                body: stream,
            })
        })
    }

    fn head<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<ObjectMeta, BlobError>> {
        Box::pin(async move {
            let (_, data, legacy_meta) = self.paths(key)?;
            Ok(Self::open(&data, &legacy_meta).await?.meta)
        })
    }

    fn delete_if<'a>(
        &'a self,
        key: &'a ObjectKey,
        if_match: Option<&'a IfMatch>,
    ) -> BoxFuture<'a, Result<bool, BlobError>> {
        Box::pin(async move {
            let (dir, data, legacy_meta) = self.paths(key)?;
            let _guard = self.lock(key).await;
            if let Some(cond) = if_match {
                cond.check(Self::open(&data, &legacy_meta).await.map(|o| o.meta))?;
            }
            // The object file first: once it is gone the key is gone, and a crash before
            // the metadata file of the previous layout is removed leaves only that file,
            // which is no object (and is removed by the next write or delete). The other
            // order could leave old content without its metadata: an unreadable key.
            let existed = match tokio::fs::remove_file(&data).await {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(io(e)),
            };
            Self::remove_legacy_meta(key.as_str(), &legacy_meta).await;
            // Tidy empty folders up to the root (a failure just leaves one behind).
            let mut d = dir;
            while d != self.root && tokio::fs::remove_dir(&d).await.is_ok() {
                if !d.pop() {
                    break;
                }
            }
            Ok(existed)
        })
    }

    fn list<'a>(&'a self, options: ListOptions) -> BoxFuture<'a, Result<ListPage, BlobError>> {
        Box::pin(async move {
            let root = self.root.clone();
            let opts = options.clone();
            let found = tokio::task::spawn_blocking(move || {
                // Walk from the folder of the prefix's complete segments.
                let (dir_part, _) = opts.prefix.rsplit_once('/').unwrap_or(("", ""));
                let mut dir = root.clone();
                let mut key_prefix = String::new();
                if !dir_part.is_empty() {
                    for s in dir_part.split('/') {
                        dir.push(format!("{s}.d"));
                        key_prefix.push_str(s);
                        key_prefix.push('/');
                    }
                }
                let mut out = Vec::new();
                LocalStore::walk(&dir, &key_prefix, opts.delimiter.is_none(), &mut out).map(|()| out)
            })
            .await
            .map_err(|e| BlobError::Backend(e.to_string()))?
            .map_err(io)?;
            let mut entries: Vec<(String, Option<(PathBuf, PathBuf)>)> = found
                .into_iter()
                .filter(|(k, _)| k.starts_with(&options.prefix))
                .filter(|(k, _)| options.after.as_ref().is_none_or(|a| k > a))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let limit = options.limit.max(1);
            let more = entries.len() > limit;
            entries.truncate(limit);
            let mut page = ListPage {
                next_after: if more {
                    entries.last().map(|e| e.0.clone())
                } else {
                    None
                },
                ..ListPage::default()
            };
            for (key, files) in entries {
                match files {
                    Some((data, legacy_meta)) => match Self::open(&data, &legacy_meta).await {
                        Ok(Opened { meta: m, .. }) => page.objects.push(ListedObject {
                            key,
                            size: m.size,
                            etag: m.etag,
                            last_modified: m.last_modified,
                        }),
                        Err(BlobError::NotFound) => {} // deleted meanwhile
                        // One unreadable file must not hide the rest of its folder.
                        Err(e) => tracing::warn!(key = %key, error = %e, "listing skips an object it cannot read"),
                    },
                    None => page.common_prefixes.push(key),
                }
            }
            Ok(page)
        })
    }

    fn copy<'a>(&'a self, from: &'a ObjectKey, to: &'a ObjectKey) -> BoxFuture<'a, Result<ObjectMeta, BlobError>> {
        Box::pin(async move {
            let (_, source, legacy_meta) = self.paths(from)?;
            let Opened { mut meta, file } = Self::open(&source, &legacy_meta).await?;
            let mut content = file;
            content.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
            meta.key = to.as_str().to_owned();
            meta.last_modified = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0);
            let tmp = self.tmp();
            let written = async {
                let mut out = tokio::fs::File::create(&tmp).await.map_err(io)?;
                let copied = tokio::io::copy(&mut content.take(meta.size), &mut out)
                    .await
                    .map_err(io)?;
                if copied != meta.size {
                    return Err(corrupt(&source, "content shorter than its metadata says"));
                }
                Self::finish(&mut out, &meta).await
            }
            .await;
            let installed = match written {
                Ok(()) => self.install(to, &tmp, false, None).await,
                Err(e) => Err(e),
            };
            if installed.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            installed.map(|()| meta)
        })
    }

    fn multipart_create<'a>(
        &'a self,
        _key: &'a ObjectKey,
        _content_type: &'a str,
        _sha256: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, BlobError>> {
        Box::pin(self.create_upload())
    }

    fn multipart_part_url<'a>(
        &'a self,
        _key: &'a ObjectKey,
        _upload: &'a str,
        _number: u32,
        _length: u64,
        _expires_in: std::time::Duration,
    ) -> BoxFuture<'a, Result<Option<PresignedUrl>, BlobError>> {
        Box::pin(async { Ok(None) })
    }

    fn multipart_put_part<'a>(
        &'a self,
        _key: &'a ObjectKey,
        upload: &'a str,
        number: u32,
        length: u64,
        body: ByteStream,
    ) -> BoxFuture<'a, Result<ReceivedPart, BlobError>> {
        Box::pin(self.put_part(upload, number, length, body))
    }

    fn multipart_parts<'a>(
        &'a self,
        _key: &'a ObjectKey,
        upload: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ReceivedPart>, BlobError>> {
        Box::pin(self.list_parts(upload))
    }

    fn multipart_complete<'a>(
        &'a self,
        key: &'a ObjectKey,
        upload: &'a str,
        assembly: Assembly,
    ) -> BoxFuture<'a, Result<ObjectMeta, BlobError>> {
        Box::pin(self.complete_upload(key, upload, assembly))
    }

    fn multipart_abort<'a>(&'a self, _key: &'a ObjectKey, upload: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(self.abort_upload(upload))
    }

    fn multipart_forget<'a>(&'a self, upload: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(self.abort_upload(upload))
    }
}
