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
//! creators cannot both win.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use ring::digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::ObjectKey;
use crate::store::{
    BlobError, BlobStore, ByteRange, ByteStream, ListOptions, ListPage, ListedObject, ObjectBody, ObjectMeta,
    PutOptions,
};

/// Longest file name segment (bytes) most file systems take, less our suffix.
const MAX_SEGMENT_BYTES: usize = 250;

/// Ends every object file, after the metadata's length.
const MAGIC: &[u8; 8] = b"EBOBJv1\n";

/// Bytes of the trailer: the metadata's length (u64, little-endian) and [`MAGIC`].
const TRAILER_BYTES: u64 = 16;

/// Objects in a folder.
pub struct LocalStore {
    root: PathBuf,
}

fn io(e: std::io::Error) -> BlobError {
    BlobError::Backend(e.to_string())
}

fn corrupt(path: &Path, why: &str) -> BlobError {
    BlobError::Backend(format!("corrupt object file {}: {why}", path.display()))
}

/// An object file opened for reading: its metadata, and the file to read content from.
struct Opened {
    meta: ObjectMeta,
    file: tokio::fs::File,
}

impl LocalStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        std::fs::create_dir_all(root.join(".tmp")).map_err(io)?;
        Ok(Self { root })
    }

    /// (folder, object file) of `key`.
    fn paths(&self, key: &ObjectKey) -> Result<(PathBuf, PathBuf), BlobError> {
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
        Ok((dir.clone(), dir.join(format!("{last}.obj"))))
    }

    /// Opens one version of an object and reads its metadata from the same open file, so
    /// the content read later through it is the content the metadata describes.
    async fn open(path: &Path) -> Result<Opened, BlobError> {
        let mut file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().await.map_err(io)?.len();
        if len < TRAILER_BYTES {
            return Err(corrupt(path, "shorter than its trailer"));
        }
        file.seek(std::io::SeekFrom::Start(len - TRAILER_BYTES))
            .await
            .map_err(io)?;
        let mut trailer = [0u8; 16];
        file.read_exact(&mut trailer).await.map_err(io)?;
        let (meta_len, magic) = trailer.split_at(8);
        if magic != MAGIC {
            return Err(corrupt(path, "no trailer"));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(meta_len);
        let meta_len = u64::from_le_bytes(len_bytes);
        let content_len = (len - TRAILER_BYTES)
            .checked_sub(meta_len)
            .ok_or_else(|| corrupt(path, "metadata longer than the file"))?;
        file.seek(std::io::SeekFrom::Start(content_len)).await.map_err(io)?;
        let mut json = vec![0u8; usize::try_from(meta_len).map_err(|_| corrupt(path, "metadata too long"))?];
        file.read_exact(&mut json).await.map_err(io)?;
        let meta: ObjectMeta = serde_json::from_slice(&json).map_err(|e| corrupt(path, &format!("metadata: {e}")))?;
        if meta.size != content_len {
            return Err(corrupt(path, "the metadata's size is not the content's"));
        }
        Ok(Opened { meta, file })
    }

    fn tmp(&self) -> PathBuf {
        self.root.join(".tmp").join(uuid::Uuid::now_v7().to_string())
    }

    /// Appends `meta` and the trailer to a file holding the content, then syncs it.
    async fn finish(file: &mut tokio::fs::File, meta: &ObjectMeta) -> Result<(), BlobError> {
        let json = serde_json::to_vec(meta).map_err(|e| BlobError::Backend(e.to_string()))?;
        file.write_all(&json).await.map_err(io)?;
        file.write_all(&(json.len() as u64).to_le_bytes()).await.map_err(io)?;
        file.write_all(MAGIC).await.map_err(io)?;
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)
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
    /// hard link that fails when the object exists).
    async fn install(&self, key: &ObjectKey, tmp: &Path, create_only: bool) -> Result<(), BlobError> {
        let (dir, data) = self.paths(key)?;
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
            Ok(())
        } else {
            tokio::fs::rename(tmp, &data).await.map_err(io)
        }
    }

    /// Keys (and object file paths) under `dir`, whose key prefix is `key_prefix`.
    fn walk(
        dir: &Path,
        key_prefix: &str,
        recursive: bool,
        out: &mut Vec<(String, Option<PathBuf>)>,
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
                    Self::walk(&entry.path(), &prefix, true, out)?;
                } else {
                    out.push((prefix, None));
                }
            } else if let Some(segment) = name.strip_suffix(".obj") {
                out.push((format!("{key_prefix}{segment}"), Some(entry.path())));
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
            let (_, data) = self.paths(key)?;
            if options.if_none_match && tokio::fs::try_exists(&data).await.map_err(io)? {
                return Err(BlobError::AlreadyExists);
            }
            let tmp = self.tmp();
            let result = match self.write_object(&tmp, key, body, &options).await {
                Ok(meta) => self.install(key, &tmp, options.if_none_match).await.map(|()| meta),
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
            let (_, data) = self.paths(key)?;
            let Opened { meta, mut file } = Self::open(&data).await?;
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
            let (_, data) = self.paths(key)?;
            Ok(Self::open(&data).await?.meta)
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<bool, BlobError>> {
        Box::pin(async move {
            let (dir, data) = self.paths(key)?;
            let existed = match tokio::fs::remove_file(&data).await {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(io(e)),
            };
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
            let mut entries: Vec<(String, Option<PathBuf>)> = found
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
            for (key, meta) in entries {
                match meta {
                    Some(path) => match Self::open(&path).await {
                        Ok(Opened { meta: m, .. }) => page.objects.push(ListedObject {
                            key,
                            size: m.size,
                            etag: m.etag,
                            last_modified: m.last_modified,
                        }),
                        Err(BlobError::NotFound) => {} // deleted meanwhile
                        Err(e) => return Err(e),
                    },
                    None => page.common_prefixes.push(key),
                }
            }
            Ok(page)
        })
    }

    fn copy<'a>(&'a self, from: &'a ObjectKey, to: &'a ObjectKey) -> BoxFuture<'a, Result<ObjectMeta, BlobError>> {
        Box::pin(async move {
            let (_, source) = self.paths(from)?;
            let Opened { mut meta, file } = Self::open(&source).await?;
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
                Ok(()) => self.install(to, &tmp, false).await,
                Err(e) => Err(e),
            };
            if installed.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            installed.map(|()| meta)
        })
    }
}
