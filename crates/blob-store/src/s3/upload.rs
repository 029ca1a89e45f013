//! Writing bodies: one part with `PutObject`, or a multipart upload of `part_size`
//! parts, hashing as it goes and aborting on any failure.

use aws_sdk_s3::primitives::ByteStream as AwsBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use md5::{Digest, Md5};
use ring::digest;

use super::{S3Store, backend, write_failed};
use crate::{BlobError, ByteStream, PutOptions};

impl S3Store {
    /// Reads up to one part from `body` into `buf`; false at the end of the body.
    pub(super) async fn fill(
        &self,
        body: &mut ByteStream,
        buf: &mut BytesMut,
        carry: &mut Option<Bytes>,
    ) -> Result<bool, BlobError> {
        if let Some(c) = carry.take() {
            buf.extend_from_slice(&c);
        }
        while buf.len() < self.part_size {
            match body.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(BlobError::Interrupted(e.to_string())),
                None => return Ok(false),
            }
        }
        if buf.len() > self.part_size {
            *carry = Some(buf.split_off(self.part_size).freeze());
        }
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn multipart(
        &self,
        key: &str,
        first: Bytes,
        mut body: ByteStream,
        carry: Option<Bytes>,
        options: &PutOptions,
        hashes: &mut (digest::Context, Md5, u64),
        seen: Option<&str>,
    ) -> Result<(), BlobError> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&options.content_type)
            .metadata("content-type", &options.content_type)
            .send()
            .await
            .map_err(backend)?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result = self
            .upload_parts(key, &upload_id, first, &mut body, carry, options, hashes)
            .await;
        match result {
            Ok(parts) => {
                let mut complete = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
                if let Some(etag) = seen {
                    complete = complete.if_match(etag);
                }
                if let Err(e) = complete.send().await {
                    self.abort(key, &upload_id).await;
                    return Err(write_failed(e, options));
                }
                Ok(())
            }
            Err(e) => {
                self.abort(key, &upload_id).await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        body: &mut ByteStream,
        mut carry: Option<Bytes>,
        options: &PutOptions,
        hashes: &mut (digest::Context, Md5, u64),
    ) -> Result<Vec<CompletedPart>, BlobError> {
        let mut parts = vec![self.upload_part(key, upload_id, 1, first).await?];
        loop {
            let mut buf = BytesMut::with_capacity(self.part_size);
            let more = self.fill(body, &mut buf, &mut carry).await?;
            if buf.is_empty() {
                break;
            }
            hash(hashes, &buf, options.max_size)?;
            let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
            parts.push(self.upload_part(key, upload_id, number, buf.freeze()).await?);
            if !more && carry.is_none() {
                break;
            }
        }
        check(hashes, options)?;
        Ok(parts)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        part: Bytes,
    ) -> Result<CompletedPart, BlobError> {
        let res = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(AwsBody::from(part))
            .send()
            .await
            .map_err(backend)?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(res.e_tag().map(str::to_owned))
            .build())
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(error = ?e, key, "could not abort a multipart upload; the bucket's lifecycle rule will clean it");
        }
    }
}

pub(super) fn hash(hashes: &mut (digest::Context, Md5, u64), data: &[u8], max: u64) -> Result<(), BlobError> {
    hashes.2 += data.len() as u64;
    if hashes.2 > max {
        return Err(BlobError::TooLarge { limit: max });
    }
    hashes.0.update(data);
    hashes.1.update(data);
    Ok(())
}

pub(super) fn check(hashes: &(digest::Context, Md5, u64), options: &PutOptions) -> Result<(String, String), BlobError> {
    let sha = hashes.0.clone().finish();
    let md5: [u8; 16] = hashes.1.clone().finalize().into();
    if options.expected_md5.is_some_and(|want| want != md5) {
        return Err(BlobError::ChecksumMismatch("Content-MD5"));
    }
    if options
        .expected_sha256
        .is_some_and(|want| want.as_slice() != sha.as_ref())
    {
        return Err(BlobError::ChecksumMismatch("SHA-256"));
    }
    Ok((
        data_encoding::HEXLOWER.encode(sha.as_ref()),
        data_encoding::HEXLOWER.encode(&md5),
    ))
}
