//! Multipart uploads in the folder: each upload's parts live in `.uploads/<upload>/`, one
//! file per part named `<number>.<sequence>.<hex md5>.part` (its ETag is in its name, so
//! listing the parts reads no content). A part is written to a temporary file in that
//! folder and renamed into place under a sequence taken just before the rename (a UUIDv7:
//! time-ordered, and monotonic within the process); the copy of a number with the highest
//! sequence is the part. After its rename a writer removes only the copies older than its
//! own (and its own when a newer one is there), so of concurrent `PUT`s of one part the
//! last renamed always survives. Completing copies
//! the parts in order into one object file in `.tmp/` (hashing as it goes, so the declared
//! SHA-256 is checked before anything is installed), installs it as any write is, then
//! removes the upload's folder. The object's ETag is S3's for a multipart object (the
//! MD5 of the parts' MD5s and the number of parts), so completing hashes each byte once.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use md5::{Digest, Md5};
use ring::digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{LocalStore, io};
use crate::ObjectKey;
use crate::model::{Assembly, BlobError, ByteStream, ObjectMeta, ReceivedPart};

/// The folder (under the root) holding the uploads' parts.
const UPLOADS: &str = ".uploads";

/// An etag without its quotes.
pub(crate) fn bare_etag(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// The part a file name `<number>.<sequence>.<hex md5>.part` names: (number, sequence,
/// md5); sequences (32 lower-case hex digits) order the copies of one number.
fn parse_part_name(name: &str) -> Option<(u32, &str, &str)> {
    let rest = name.strip_suffix(".part")?;
    let (number, rest) = rest.split_once('.')?;
    let (sequence, md5) = rest.split_once('.')?;
    let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    Some((number.parse().ok()?, sequence, md5)).filter(|_| hex(sequence) && hex(md5))
}

impl LocalStore {
    /// The folder of the upload `upload` (ids are this store's own: letters, digits, `-`).
    fn upload_dir(&self, upload: &str) -> Result<PathBuf, BlobError> {
        let safe =
            !upload.is_empty() && upload.len() <= 64 && upload.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !safe {
            return Err(BlobError::UploadNotFound);
        }
        Ok(self.root.join(UPLOADS).join(upload))
    }

    /// The part files of an upload: (number, hex md5, size, path), the copy of each number
    /// with the highest sequence, in order.
    async fn part_files(dir: &Path) -> Result<Vec<(u32, String, u64, PathBuf)>, BlobError> {
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::UploadNotFound),
            Err(e) => return Err(io(e)),
        };
        let mut found: std::collections::BTreeMap<u32, (String, String, u64, PathBuf)> =
            std::collections::BTreeMap::new();
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((number, sequence, md5)) = parse_part_name(&name) else {
                continue;
            };
            if found.get(&number).is_some_and(|(seen, ..)| seen.as_str() > sequence) {
                continue;
            }
            let meta = match entry.metadata().await {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            found.insert(number, (sequence.to_owned(), md5.to_owned(), meta.len(), entry.path()));
        }
        Ok(found
            .into_iter()
            .map(|(n, (_, md5, size, path))| (n, md5, size, path))
            .collect())
    }

    pub(super) async fn create_upload(&self) -> Result<String, BlobError> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        tokio::fs::create_dir_all(self.upload_dir(&id)?).await.map_err(io)?;
        Ok(id)
    }

    pub(super) async fn put_part(
        &self,
        upload: &str,
        number: u32,
        length: u64,
        mut body: ByteStream,
    ) -> Result<ReceivedPart, BlobError> {
        let dir = self.upload_dir(upload)?;
        if !tokio::fs::try_exists(&dir).await.map_err(io)? {
            return Err(BlobError::UploadNotFound);
        }
        let tmp = dir.join(format!("{}.tmp", uuid::Uuid::now_v7()));
        let written = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => BlobError::UploadNotFound,
                _ => io(e),
            })?;
            let mut md5 = Md5::new();
            let mut size: u64 = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobError::Interrupted(e.to_string()))?;
                size += chunk.len() as u64;
                if size > length {
                    return Err(BlobError::TooLarge { limit: length });
                }
                md5.update(&chunk);
                file.write_all(&chunk).await.map_err(io)?;
            }
            if size != length {
                return Err(BlobError::Interrupted(format!(
                    "the part ended after {size} of its {length} bytes"
                )));
            }
            file.flush().await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
            let md5: [u8; 16] = md5.finalize().into();
            Ok(data_encoding::HEXLOWER.encode(&md5))
        }
        .await;
        let md5 = match written {
            Ok(md5) => md5,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let sequence = uuid::Uuid::now_v7().simple().to_string();
        let name = format!("{number}.{sequence}.{md5}.part");
        if let Err(e) = tokio::fs::rename(&tmp, dir.join(&name)).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => BlobError::UploadNotFound,
                _ => io(e),
            });
        }
        // Older copies of this part go; so does this one when a newer one is there (a
        // concurrent `PUT` of the same part renamed after this one): the newest stays.
        if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
            let mut superseded = false;
            while let Ok(Some(entry)) = entries.next_entry().await {
                let other = entry.file_name().to_string_lossy().into_owned();
                match parse_part_name(&other) {
                    Some((n, seq, _)) if n == number && seq < sequence.as_str() => {
                        let _ = tokio::fs::remove_file(entry.path()).await;
                    }
                    Some((n, seq, _)) if n == number && seq > sequence.as_str() => superseded = true,
                    _ => {}
                }
            }
            if superseded {
                let _ = tokio::fs::remove_file(dir.join(&name)).await;
            }
        }
        Ok(ReceivedPart {
            number,
            etag: format!("\"{md5}\""),
            size: length,
        })
    }

    pub(super) async fn list_parts(&self, upload: &str) -> Result<Vec<ReceivedPart>, BlobError> {
        let dir = self.upload_dir(upload)?;
        Ok(Self::part_files(&dir)
            .await?
            .into_iter()
            .map(|(number, md5, size, _)| ReceivedPart {
                number,
                etag: format!("\"{md5}\""),
                size,
            })
            .collect())
    }

    pub(super) async fn complete_upload(
        &self,
        key: &ObjectKey,
        upload: &str,
        assembly: Assembly,
    ) -> Result<ObjectMeta, BlobError> {
        let dir = self.upload_dir(upload)?;
        let held = Self::part_files(&dir).await?;
        let mut paths = Vec::with_capacity(assembly.parts.len());
        for part in &assembly.parts {
            let path = held
                .iter()
                .find(|(n, md5, ..)| *n == part.number && md5 == bare_etag(&part.etag))
                .map(|(.., path)| path.clone())
                .ok_or_else(|| BlobError::UploadRefused {
                    code: "invalid_parts",
                    message: format!("part {} is not held with ETag {}", part.number, part.etag),
                })?;
            paths.push(path);
        }
        let tmp = self.tmp();
        let result = async {
            let mut out = tokio::fs::File::create(&tmp).await.map_err(io)?;
            let mut sha = digest::Context::new(&digest::SHA256);
            let mut size: u64 = 0;
            let mut buf = vec![0u8; 1024 * 1024];
            for path in &paths {
                let mut part = tokio::fs::File::open(path).await.map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => BlobError::UploadRefused {
                        code: "invalid_parts",
                        message: "a part was replaced or removed while the upload was completed".to_owned(),
                    },
                    _ => io(e),
                })?;
                loop {
                    let n = part.read(&mut buf).await.map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    if size > assembly.size {
                        return Err(size_mismatch(assembly.size));
                    }
                    sha.update(&buf[..n]);
                    out.write_all(&buf[..n]).await.map_err(io)?;
                }
            }
            if size != assembly.size {
                return Err(size_mismatch(assembly.size));
            }
            let sha = sha.finish();
            if assembly.sha256.is_some_and(|want| want.as_slice() != sha.as_ref()) {
                return Err(BlobError::UploadRefused {
                    code: "checksum_mismatch",
                    message: "the assembled object does not match the declared sha256; nothing was stored".to_owned(),
                });
            }
            let meta = ObjectMeta {
                key: key.as_str().to_owned(),
                size,
                etag: multipart_etag(&assembly.parts),
                content_type: assembly.content_type.clone(),
                sha256: data_encoding::HEXLOWER.encode(sha.as_ref()),
                last_modified: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0),
            };
            Self::finish(&mut out, &meta).await?;
            drop(out);
            self.install(key, &tmp, false, None).await?;
            Ok(meta)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
            return result;
        }
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            tracing::warn!(upload, error = %e, "could not remove a completed upload's parts");
        }
        result
    }

    pub(super) async fn abort_upload(&self, upload: &str) -> Result<(), BlobError> {
        let dir = match self.upload_dir(upload) {
            Ok(dir) => dir,
            Err(BlobError::UploadNotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}

/// The ETag of an object assembled from `parts`, as S3 makes it: the hex MD5 of the
/// parts' MD5s, a dash and the number of parts. (The whole object's MD5 would cost a
/// second hash over every byte at completion; the parts' MD5s are known already.)
fn multipart_etag(parts: &[ReceivedPart]) -> String {
    let mut md5 = Md5::new();
    for part in parts {
        if let Ok(bytes) = data_encoding::HEXLOWER_PERMISSIVE.decode(bare_etag(&part.etag).as_bytes()) {
            md5.update(&bytes);
        }
    }
    let md5: [u8; 16] = md5.finalize().into();
    format!("\"{}-{}\"", data_encoding::HEXLOWER.encode(&md5), parts.len())
}

/// The refusal of an assembly whose size is not the declared one.
pub(crate) fn size_mismatch(declared: u64) -> BlobError {
    BlobError::UploadRefused {
        code: "size_mismatch",
        message: format!("the parts do not add up to the declared size of {declared} bytes; nothing was stored"),
    }
}

#[cfg(test)]
mod tests {
    use super::{bare_etag, parse_part_name};

    #[test]
    fn assembled_etags_are_s3s() {
        use super::{ReceivedPart, multipart_etag};
        // S3's ETag of a two-part object whose parts are "hello" and " world".
        let part = |number, etag: &str| ReceivedPart {
            number,
            etag: etag.to_owned(),
            size: 0,
        };
        let etag = multipart_etag(&[
            part(1, "\"5d41402abc4b2a76b9719d911017c592\""),
            part(2, "b7913aa15c43be7d534b4eec6e99e8a0"),
        ]);
        assert_eq!(etag, "\"a56979024342128ecebc884e3442121b-2\"");
    }

    #[test]
    fn part_names_carry_number_and_md5() {
        let md5 = "0123456789abcdef0123456789abcdef";
        let seq = "019ae5f0c0de7000800000000000000a";
        assert_eq!(parse_part_name(&format!("7.{seq}.{md5}.part")), Some((7, seq, md5)));
        for bad in [
            "7.part",
            "7.0123456789abcdef0123456789abcdef.part",
            "x.019ae5f0c0de7000800000000000000a.0123456789abcdef0123456789abcdef.part",
            "7.019ae5f0c0de7000800000000000000A.0123456789abcdef0123456789abcdef.part",
            "7.019ae5f0c0de7000800000000000000a.abc.part",
            "7.tmp",
        ] {
            assert_eq!(parse_part_name(bad), None, "{bad}");
        }
        assert_eq!(bare_etag("\"abc\""), "abc");
        assert_eq!(bare_etag("abc"), "abc");
    }
}
