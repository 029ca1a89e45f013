//! The one-file object format: content, JSON metadata, then a 16-byte trailer; and
//! reading objects of the previous two-file layout.

use std::path::Path;

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{LocalStore, corrupt, io};
use crate::{BlobError, ObjectMeta};

/// Ends every object file, after the metadata's length.
const MAGIC: &[u8; 8] = b"EBOBJv1\n";

/// Bytes of the trailer: the metadata's length (u64, little-endian) and [`MAGIC`].
const TRAILER_BYTES: u64 = 16;

/// Longest metadata (JSON) an object file or a previous-layout metadata file may hold: a
/// key is at most 1,024 bytes and a media type one header, so a real one is far shorter,
/// and a trailer announcing more is not believed (nor is that much memory allocated).
const MAX_META_BYTES: u64 = 1 << 20;

/// An object file opened for reading: its metadata, and the file to read content from
/// (the content is its first `meta.size` bytes in both layouts).
pub(super) struct Opened {
    pub(super) meta: ObjectMeta,
    pub(super) file: tokio::fs::File,
}

/// The metadata a file's trailer holds, or why the file has no valid trailer.
type Trailer = Result<ObjectMeta, String>;

/// The quoted hex MD5 of a file's bytes from its start: the ETag of an old-layout object
/// whose content is the whole file.
async fn md5_etag(file: &mut tokio::fs::File) -> Result<String, BlobError> {
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
    }
    let md5: [u8; 16] = md5.finalize().into();
    Ok(format!("\"{}\"", data_encoding::HEXLOWER.encode(&md5)))
}

impl LocalStore {
    /// Opens one version of an object and reads its metadata from the same open file (or,
    /// for an object of the previous layout, from the metadata file beside it), so the
    /// content read later through it is the content the metadata describes.
    pub(super) async fn open(data: &Path, legacy_meta: &Path) -> Result<Opened, BlobError> {
        // A writer renames a new object file into place and then removes the previous
        // layout's metadata file: a reader that opened the old content file just before
        // may find that metadata file gone. Opening again reaches the new version.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::open_once(data, legacy_meta).await? {
                Ok(opened) => return Ok(opened),
                Err(why) if attempts >= 3 => {
                    return Err(corrupt(data, &format!("{why}, and no metadata file beside it")));
                }
                Err(_) => {}
            }
        }
    }

    /// One attempt of [`Self::open`]; `Ok(Err(why))` when the file has no valid trailer
    /// and no metadata file is beside it.
    ///
    /// Telling the layouts apart: a file is read as a one-file object when its last 16
    /// bytes are a trailer whose length fits in the file and whose metadata parses as an
    /// object's and gives the size of the bytes before it. Content that merely ends with
    /// the tag (any content may) fails one of these checks unless it is itself a whole
    /// object file of this layout, so such content is read by the previous layout when a
    /// metadata file is beside it, and is refused as corrupt when none is (it cannot be
    /// a new-layout object with content ending like a trailer: a new-layout file always
    /// ends with its own valid trailer, whatever its content).
    ///
    /// The one ambiguous case is a file with a valid trailer and a previous-layout
    /// metadata file beside it. Either the metadata file is stale (a crash between a
    /// write's rename and its removal of that file: see [`Self::install`]), or the object
    /// is of the previous layout and its content happens to be a whole object file (a
    /// backup of one, uploaded before the upgrade). The previous layout wins only when its
    /// metadata describes this very file: its size is the whole file's and its ETag the
    /// whole file's MD5, which a stale metadata file of other content does not match.
    /// (That costs one pass over the file, only in this case.) A bare content file with
    /// neither a valid trailer nor a metadata file is refused as corrupt, not read as
    /// missing: it is also what a damaged new-layout file looks like, and hiding that
    /// would hide lost data (the previous version answered 404 for the content file a
    /// crash in its delete could leave behind; such a key is now a 503 until written or
    /// deleted, and listings skip it with a warning).
    async fn open_once(data: &Path, legacy_meta: &Path) -> Result<Result<Opened, String>, BlobError> {
        let mut file = match tokio::fs::File::open(data).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().await.map_err(io)?.len();
        let trailer = Self::read_trailer(&mut file, len).await?;
        let legacy = Self::read_legacy_meta(legacy_meta).await?;
        let meta = match (trailer, legacy) {
            (Ok(meta), None | Some(Err(_))) => meta,
            (Ok(meta), Some(Ok(old))) => {
                if old.size == len && md5_etag(&mut file).await? == old.etag {
                    old
                } else {
                    meta
                }
            }
            (Err(_), Some(Ok(old))) if old.size == len => old,
            (Err(why), Some(Ok(old))) => {
                return Err(corrupt(
                    data,
                    &format!(
                        "{why}, and the metadata file beside it gives {} bytes where the file has {len}",
                        old.size
                    ),
                ));
            }
            (Err(why), Some(Err(e))) => {
                return Err(corrupt(
                    data,
                    &format!("{why}, and the metadata file beside it is unreadable: {e}"),
                ));
            }
            (Err(why), None) => return Ok(Err(why)),
        };
        Ok(Ok(Opened { meta, file }))
    }

    /// The metadata in the trailer of `file` (`len` bytes), or why there is no valid one.
    async fn read_trailer(file: &mut tokio::fs::File, len: u64) -> Result<Trailer, BlobError> {
        if len < TRAILER_BYTES {
            return Ok(Err("shorter than its trailer".into()));
        }
        file.seek(std::io::SeekFrom::Start(len - TRAILER_BYTES))
            .await
            .map_err(io)?;
        let mut trailer = [0u8; 16];
        file.read_exact(&mut trailer).await.map_err(io)?;
        let (meta_len, magic) = trailer.split_at(8);
        if magic != MAGIC {
            return Ok(Err("no trailer".into()));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(meta_len);
        let meta_len = u64::from_le_bytes(len_bytes);
        let Some(content_len) = (len - TRAILER_BYTES).checked_sub(meta_len) else {
            return Ok(Err("a trailer announcing more metadata than the file holds".into()));
        };
        if meta_len > MAX_META_BYTES {
            return Ok(Err(format!("a trailer announcing {meta_len} bytes of metadata")));
        }
        let Ok(json_len) = usize::try_from(meta_len) else {
            return Ok(Err(format!("a trailer announcing {meta_len} bytes of metadata")));
        };
        file.seek(std::io::SeekFrom::Start(content_len)).await.map_err(io)?;
        let mut json = vec![0u8; json_len];
        file.read_exact(&mut json).await.map_err(io)?;
        let meta: ObjectMeta = match serde_json::from_slice(&json) {
            Ok(m) => m,
            Err(e) => return Ok(Err(format!("a trailer whose metadata is not an object's: {e}"))),
        };
        if meta.size != content_len {
            return Ok(Err("a trailer whose metadata's size is not the content's".into()));
        }
        Ok(Ok(meta))
    }

    /// The previous layout's metadata file of an object: `None` when there is none,
    /// `Some(Err(why))` when it cannot be read as metadata.
    async fn read_legacy_meta(path: &Path) -> Result<Option<Result<ObjectMeta, String>>, BlobError> {
        let file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut json = Vec::new();
        file.take(MAX_META_BYTES + 1).read_to_end(&mut json).await.map_err(io)?;
        if json.len() as u64 > MAX_META_BYTES {
            return Ok(Some(Err(format!("longer than {MAX_META_BYTES} bytes"))));
        }
        Ok(Some(serde_json::from_slice(&json).map_err(|e| e.to_string())))
    }

    /// Removes the previous layout's metadata file of `key`, once the key's object file is
    /// gone or of the new layout. A failure is logged: the file is then ignored (a valid
    /// trailer wins over it, and without a content file it is no object).
    pub(super) async fn remove_legacy_meta(key: &str, legacy_meta: &Path) {
        match tokio::fs::remove_file(legacy_meta).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                key,
                error = %e,
                "could not remove the previous layout's metadata file of an object; it is ignored"
            ),
        }
    }
    /// Appends `meta` and the trailer to a file holding the content, then syncs it.
    pub(super) async fn finish(file: &mut tokio::fs::File, meta: &ObjectMeta) -> Result<(), BlobError> {
        let json = serde_json::to_vec(meta).map_err(|e| BlobError::Backend(e.to_string()))?;
        if json.len() as u64 > MAX_META_BYTES {
            return Err(BlobError::Backend(format!(
                "{} bytes of metadata; the local store takes at most {MAX_META_BYTES}",
                json.len()
            )));
        }
        file.write_all(&json).await.map_err(io)?;
        file.write_all(&(json.len() as u64).to_le_bytes()).await.map_err(io)?;
        file.write_all(MAGIC).await.map_err(io)?;
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)
    }
}
