//! The S3 backend (any S3-compatible server through an endpoint URL and path-style
//! addressing). Bodies stream: a body that fits in one part is sent with `PutObject`,
//! a larger one with a multipart upload of `part_size` parts, aborted on any failure
//! (a too-large or interrupted body, a checksum mismatch), so nothing half-written stays.
//!
//! Conditions: `If-Match` is checked with a `HeadObject` before the body is read, and
//! the write then carries S3's own `If-Match` with the ETag that check saw (on
//! `PutObject`, or on `CompleteMultipartUpload`), so on S3 (and servers that honour it)
//! the check and the write are atomic: a version written in between fails the write with
//! 412. A server that ignores the header leaves a window between the check and the write.
//! Deletes are checked with `HeadObject` only (S3's conditional delete is not sent, as
//! not every S3-compatible server takes it): a write landing between that check and the
//! delete is deleted. Reads pin the body to the version whose metadata was read
//! (`If-Match` on `GetObject`), so a range is never cut from another version.

mod multipart;
mod upload;

use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream as AwsBody;
use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use md5::{Digest, Md5};
use ring::digest;

use self::upload::{check, hash};
use crate::ObjectKey;
use crate::model::{Assembly, ReceivedPart};
use crate::{
    BlobError, BlobStore, ByteRange, ByteStream, IfMatch, ListOptions, ListPage, ListedObject, ObjectBody, ObjectMeta,
    PresignedUrl, PutOptions,
};

/// Smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Where and how to reach S3.
#[derive(Clone)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The region.
    pub region: String,
    /// An S3-compatible endpoint (`AWS_ENDPOINT_URL_S3`); AWS when absent.
    pub endpoint: Option<String>,
    /// Path-style addressing (most S3-compatible servers want it).
    pub force_path_style: bool,
    /// Where the credentials come from (static keys or the standard AWS chain).
    pub credentials: aws_credential_types::provider::SharedCredentialsProvider,
    /// Bytes per multipart part (at least 5 MiB); also the memory a transfer holds.
    pub part_size: usize,
    /// How long to wait to connect, and for each answer's first byte once a request is
    /// sent: a stalled S3 fails the request instead of holding it forever.
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("force_path_style", &self.force_path_style)
            .field("credentials", &"***")
            .field("part_size", &self.part_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Objects in an S3 bucket.
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    part_size: usize,
}

type Response = aws_sdk_s3::config::http::HttpResponse;

fn backend<E: std::error::Error + 'static>(e: SdkError<E, Response>) -> BlobError {
    let text = format!("S3: {}", aws_sdk_s3::error::DisplayErrorContext(&e));
    BlobError::Backend(text.chars().take(500).collect())
}

fn status<E>(e: &SdkError<E, Response>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn to_utc(t: Option<&aws_sdk_s3::primitives::DateTime>) -> chrono::DateTime<chrono::Utc> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
        .unwrap_or_else(chrono::Utc::now)
}

fn quoted(etag: Option<&str>) -> String {
    match etag {
        Some(e) if e.starts_with('"') => e.to_owned(),
        Some(e) => format!("\"{e}\""),
        None => "\"\"".to_owned(),
    }
}

impl S3Store {
    /// A client for `config`, on rustls with ring.
    pub fn new(config: &S3Config) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(config.credentials.clone())
            .force_path_style(config.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            // No whole-operation limit: a large object may take long to stream.
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(config.timeout)
                    .read_timeout(config.timeout)
                    .build(),
            )
            .http_client(http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            part_size: config.part_size.max(MIN_PART_SIZE),
        }
    }

    /// The SDK client (for presigning).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn fetch_meta(&self, key: &str) -> Result<ObjectMeta, BlobError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if status(&e) == Some(404) {
                    BlobError::NotFound
                } else {
                    backend(e)
                }
            })?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0),
            etag: match head.e_tag() {
                Some(e) => quoted(Some(e)),
                None => quoted(head.metadata().and_then(|m| m.get("md5")).map(String::as_str)),
            },
            // Our own copy first: some S3-compatible servers do not keep Content-Type.
            content_type: head
                .metadata()
                .and_then(|m| m.get("content-type"))
                .map(String::as_str)
                .or(head.content_type())
                .unwrap_or("application/octet-stream")
                .to_owned(),
            sha256: head
                .metadata()
                .and_then(|m| m.get("sha256"))
                .cloned()
                .unwrap_or_default(),
            last_modified: to_utc(head.last_modified()),
        })
    }
}

/// A refused conditional write (412, or S3's 409 for a conflicting concurrent write) as
/// the condition that failed; anything else as a backend failure.
fn write_failed<E: std::error::Error + 'static>(e: SdkError<E, Response>, options: &PutOptions) -> BlobError {
    match status(&e) {
        Some(412 | 409) if options.if_match.is_some() => BlobError::PreconditionFailed { current: None },
        Some(412) if options.if_none_match => BlobError::AlreadyExists,
        _ => backend(e),
    }
}

impl BlobStore for S3Store {
    fn presign<'a>(
        &'a self,
        key: &'a ObjectKey,
        method: &'a str,
        expires_in: std::time::Duration,
        content_type: Option<&'a str>,
        content_length: Option<u64>,
    ) -> BoxFuture<'a, Result<Option<PresignedUrl>, BlobError>> {
        Box::pin(async move {
            let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
                .map_err(|e| BlobError::Backend(e.to_string()))?;
            let signed = match method {
                "PUT" => {
                    let mut put = self.client.put_object().bucket(&self.bucket).key(key.as_str());
                    // Both become signed headers (X-Amz-SignedHeaders): S3 refuses an
                    // upload of another length or type.
                    if let Some(ct) = content_type {
                        put = put.content_type(ct);
                    }
                    if let Some(len) = content_length {
                        let len = i64::try_from(len).map_err(|_| BlobError::TooLarge {
                            limit: i64::MAX.unsigned_abs(),
                        })?;
                        put = put.content_length(len);
                    }
                    put.presigned(config).await.map_err(backend)?
                }
                _ => self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(key.as_str())
                    .presigned(config)
                    .await
                    .map_err(backend)?,
            };
            Ok(Some(PresignedUrl {
                url: signed.uri().to_owned(),
                headers: signed.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            }))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a ObjectKey,
        mut body: ByteStream,
        options: PutOptions,
    ) -> BoxFuture<'a, Result<ObjectMeta, BlobError>> {
        Box::pin(async move {
            let key = key.as_str();
            // The ETag this check saw is what S3 must still hold when the write lands.
            let seen = match &options.if_match {
                Some(cond) => Some(cond.check(self.fetch_meta(key).await)?.etag),
                None => None,
            };
            if options.if_none_match {
                match self.fetch_meta(key).await {
                    Ok(_) => return Err(BlobError::AlreadyExists),
                    Err(BlobError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            let mut hashes = (digest::Context::new(&digest::SHA256), Md5::new(), 0u64);
            let mut buf = BytesMut::with_capacity(self.part_size.min(1024 * 1024));
            let mut carry = None;
            let more = self.fill(&mut body, &mut buf, &mut carry).await?;
            hash(&mut hashes, &buf, options.max_size)?;
            let first = buf.freeze();
            let (sha, md5) = if !more && carry.is_none() {
                // Fits in one request: check first, then send it whole.
                let (sha, md5) = check(&hashes, &options)?;
                let mut put = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .content_type(&options.content_type)
                    .metadata("sha256", &sha)
                    .metadata("md5", &md5)
                    .metadata("content-type", &options.content_type)
                    .body(AwsBody::from(first));
                if options.if_none_match {
                    put = put.if_none_match("*");
                }
                if let Some(etag) = &seen {
                    put = put.if_match(etag);
                }
                put.send().await.map_err(|e| write_failed(e, &options))?;
                (sha, md5)
            } else {
                // The hashes are known only at the end, after S3 has the metadata: a
                // multipart object's stored metadata carries none (its ETag is S3's).
                self.multipart(key, first, body, carry, &options, &mut hashes, seen.as_deref())
                    .await?;
                check(&hashes, &options)?
            };
            let stored = self.fetch_meta(key).await?;
            Ok(ObjectMeta {
                size: hashes.2,
                etag: if stored.etag == "\"\"" {
                    format!("\"{md5}\"")
                } else {
                    stored.etag
                },
                content_type: options.content_type,
                sha256: sha,
                ..stored
            })
        })
    }

    fn get<'a>(&'a self, key: &'a ObjectKey, range: Option<ByteRange>) -> BoxFuture<'a, Result<ObjectBody, BlobError>> {
        Box::pin(async move {
            // The body must be the version `meta` describes (the range is resolved
            // against its size): a version written in between fails `If-Match` with 412,
            // and the read starts again from the new metadata.
            let mut attempts = 0;
            let (meta, span, out) = loop {
                attempts += 1;
                let meta = self.fetch_meta(key.as_str()).await?;
                let span = match range {
                    Some(r) => Some(
                        r.resolve(meta.size)
                            .ok_or(BlobError::RangeNotSatisfiable { size: meta.size })?,
                    ),
                    None => None,
                };
                let mut req = self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(key.as_str())
                    .if_match(&meta.etag);
                if let Some((first, last)) = span {
                    req = req.range(format!("bytes={first}-{last}"));
                }
                match req.send().await {
                    Ok(out) => break (meta, span, out),
                    Err(e) if status(&e) == Some(412) && attempts < 3 => {}
                    Err(e) if status(&e) == Some(404) => return Err(BlobError::NotFound),
                    Err(e) => return Err(backend(e)),
                }
            };
            let stream = futures_util::stream::unfold(out.body, |mut b| async move {
                b.next().await.map(|item| (item.map_err(std::io::Error::other), b))
            })
            .boxed();
            Ok(ObjectBody {
                meta,
                range: span,
                body: stream,
            })
        })
    }

    fn head<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<ObjectMeta, BlobError>> {
        Box::pin(self.fetch_meta(key.as_str()))
    }

    fn delete_if<'a>(
        &'a self,
        key: &'a ObjectKey,
        if_match: Option<&'a IfMatch>,
    ) -> BoxFuture<'a, Result<bool, BlobError>> {
        Box::pin(async move {
            let current = self.fetch_meta(key.as_str()).await;
            match if_match {
                Some(cond) => {
                    cond.check(current)?;
                }
                None => match current {
                    Ok(_) => {}
                    Err(BlobError::NotFound) => return Ok(false),
                    Err(e) => return Err(e),
                },
            }
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .send()
                .await
                .map_err(backend)?;
            Ok(true)
        })
    }

    fn list<'a>(&'a self, options: ListOptions) -> BoxFuture<'a, Result<ListPage, BlobError>> {
        Box::pin(async move {
            let mut req = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&options.prefix)
                .max_keys(i32::try_from(options.limit.max(1)).unwrap_or(1000));
            if let Some(d) = options.delimiter {
                req = req.delimiter(d.to_string());
            }
            if let Some(a) = &options.after {
                req = req.start_after(a);
            }
            let out = req.send().await.map_err(backend)?;
            let mut common_prefixes: Vec<String> = out
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned))
                .collect();
            let mut objects = Vec::new();
            for o in out.contents() {
                let key = o.key().unwrap_or_default();
                // Group here too, for S3-compatible servers that ignore `delimiter`.
                if let Some(d) = options.delimiter
                    && let Some(rest) = key.strip_prefix(options.prefix.as_str())
                    && let Some(i) = rest.find(d)
                {
                    let group = format!("{}{}", options.prefix, &rest[..=i]);
                    if !common_prefixes.contains(&group) {
                        common_prefixes.push(group);
                    }
                    continue;
                }
                objects.push(ListedObject {
                    key: key.to_owned(),
                    size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                    etag: quoted(o.e_tag()),
                    last_modified: to_utc(o.last_modified()),
                });
            }
            common_prefixes.sort();
            let last = objects
                .iter()
                .map(|o| o.key.clone())
                .chain(common_prefixes.iter().cloned())
                .max();
            Ok(ListPage {
                objects,
                common_prefixes,
                next_after: if out.is_truncated() == Some(true) { last } else { None },
            })
        })
    }

    fn copy<'a>(&'a self, from: &'a ObjectKey, to: &'a ObjectKey) -> BoxFuture<'a, Result<ObjectMeta, BlobError>> {
        Box::pin(async move {
            self.fetch_meta(from.as_str()).await?;
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(to.as_str())
                .copy_source(copy_source(&self.bucket, from.as_str()))
                .send()
                .await
                .map_err(backend)?;
            self.fetch_meta(to.as_str()).await
        })
    }

    fn multipart_create<'a>(
        &'a self,
        key: &'a ObjectKey,
        content_type: &'a str,
        sha256: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, BlobError>> {
        Box::pin(self.create_upload(key.as_str(), content_type, sha256))
    }

    fn multipart_part_url<'a>(
        &'a self,
        key: &'a ObjectKey,
        upload: &'a str,
        number: u32,
        length: u64,
        expires_in: std::time::Duration,
    ) -> BoxFuture<'a, Result<Option<PresignedUrl>, BlobError>> {
        Box::pin(async move {
            self.part_url(key.as_str(), upload, number, length, expires_in)
                .await
                .map(Some)
        })
    }

    fn multipart_put_part<'a>(
        &'a self,
        _key: &'a ObjectKey,
        _upload: &'a str,
        _number: u32,
        _length: u64,
        _body: ByteStream,
    ) -> BoxFuture<'a, Result<ReceivedPart, BlobError>> {
        // Parts go straight to S3 through their presigned URLs; the gateway signs none.
        Box::pin(async {
            Err(BlobError::SignatureInvalid(
                "parts of this namespace's uploads go to the URLs the upload lists".to_owned(),
            ))
        })
    }

    fn multipart_parts<'a>(
        &'a self,
        key: &'a ObjectKey,
        upload: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ReceivedPart>, BlobError>> {
        Box::pin(self.list_parts(key.as_str(), upload))
    }

    fn multipart_complete<'a>(
        &'a self,
        key: &'a ObjectKey,
        upload: &'a str,
        assembly: Assembly,
    ) -> BoxFuture<'a, Result<ObjectMeta, BlobError>> {
        Box::pin(self.complete_upload(key.as_str(), upload, assembly))
    }

    fn multipart_abort<'a>(&'a self, key: &'a ObjectKey, upload: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(self.abort_upload(key.as_str(), upload))
    }
}

/// `bucket/key` with the key percent-encoded (slashes kept), as `x-amz-copy-source` wants.
fn copy_source(bucket: &str, key: &str) -> String {
    let encoded: Vec<String> = key
        .split('/')
        .map(|s| {
            url::form_urlencoded::byte_serialize(s.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect();
    format!("{bucket}/{}", encoded.join("/"))
}
