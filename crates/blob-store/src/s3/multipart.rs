//! Multipart uploads that clients send straight to S3: `CreateMultipartUpload` (with the
//! object's type and declared SHA-256 as its metadata), presigned `UploadPart` URLs bound
//! to each part's length, `ListParts`, `CompleteMultipartUpload` and
//! `AbortMultipartUpload`.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::{S3Store, backend, quoted, status};
use crate::local::multipart::size_mismatch;
use crate::model::{Assembly, BlobError, ObjectMeta, PresignedUrl, ReceivedPart};

/// S3's answer for an upload it does not have (`NoSuchUpload`) as ours.
fn upload_failed<E: std::error::Error + 'static>(e: aws_sdk_s3::error::SdkError<E, super::Response>) -> BlobError {
    match status(&e) {
        Some(404) => BlobError::UploadNotFound,
        _ => backend(e),
    }
}

impl S3Store {
    pub(super) async fn create_upload(
        &self,
        key: &str,
        content_type: &str,
        sha256: Option<&str>,
    ) -> Result<String, BlobError> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .metadata("content-type", content_type);
        if let Some(sha) = sha256 {
            create = create.metadata("sha256", sha);
        }
        let out = create.send().await.map_err(backend)?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| BlobError::Backend("S3 answered CreateMultipartUpload without an UploadId".to_owned()))
    }

    pub(super) async fn part_url(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        length: u64,
        expires_in: std::time::Duration,
    ) -> Result<PresignedUrl, BlobError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| BlobError::Backend(e.to_string()))?;
        let number = i32::try_from(number).map_err(|_| BlobError::Internal("part number".to_owned()))?;
        let length = i64::try_from(length).map_err(|_| BlobError::Internal("part length".to_owned()))?;
        // The length becomes a signed header: S3 refuses a part of another size.
        let signed = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .part_number(number)
            .content_length(length)
            .presigned(config)
            .await
            .map_err(backend)?;
        Ok(PresignedUrl {
            url: signed.uri().to_owned(),
            headers: signed
                .headers()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
    }

    pub(super) async fn list_parts(&self, key: &str, upload: &str) -> Result<Vec<ReceivedPart>, BlobError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(upload_failed)?;
            for p in out.parts() {
                let (Some(number), Some(size)) = (p.part_number(), p.size()) else {
                    continue;
                };
                parts.push(ReceivedPart {
                    number: u32::try_from(number).unwrap_or(0),
                    etag: quoted(p.e_tag()),
                    size: u64::try_from(size).unwrap_or(0),
                });
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) if marker.as_deref() != Some(next) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        parts.dedup_by_key(|p| p.number);
        Ok(parts)
    }

    pub(super) async fn complete_upload(
        &self,
        key: &str,
        upload: &str,
        assembly: Assembly,
    ) -> Result<ObjectMeta, BlobError> {
        let parts: Vec<CompletedPart> = assembly
            .parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(i32::try_from(p.number).unwrap_or(i32::MAX))
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await;
        if let Err(e) = done {
            return Err(match status(&e) {
                Some(404) => BlobError::UploadNotFound,
                // InvalidPart, InvalidPartOrder, EntityTooSmall: the parts as given.
                Some(400) => BlobError::UploadRefused {
                    code: "invalid_parts",
                    message: format!(
                        "S3 refused the parts: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                            .to_string()
                            .chars()
                            .take(300)
                            .collect::<String>()
                    ),
                },
                _ => backend(e),
            });
        }
        let meta = self.fetch_meta(key).await?;
        if meta.size != assembly.size {
            // Checked against ListParts before, so only a part replaced meanwhile gets
            // here: the object must not stay.
            if let Err(e) = self.client.delete_object().bucket(&self.bucket).key(key).send().await {
                tracing::warn!(key, error = %backend(e), "could not delete an assembled object of the wrong size");
            }
            return Err(size_mismatch(assembly.size));
        }
        Ok(meta)
    }

    pub(super) async fn abort_upload(&self, key: &str, upload: &str) -> Result<(), BlobError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
