//! A real S3 API for tests and benchmarks: `s3s` + `s3s-fs` serving a temporary folder
//! from this process, with one bucket. A test double only: it keeps no Content-Type, does
//! not group by delimiter, and would let `../` in a key escape its bucket (our key rules
//! refuse such keys before any backend sees them). `s3s-fs` lists an upload's parts
//! without their ETags; [`Peer`] adds them (the MD5 of each part, as S3 answers), since
//! the gateway checks a completion's ETags against that list.
#![allow(clippy::expect_used)]

use crate::S3Config;

/// Access key the test server accepts.
pub const ACCESS_KEY: &str = "test-access-key";
/// Secret key the test server accepts.
pub const SECRET_KEY: &str = "test-secret-key-0123456789";
/// The bucket it serves.
pub const BUCKET: &str = "eb-test";

/// A running test S3 server; stops with the runtime.
pub struct S3TestServer {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The folder behind it.
    pub dir: tempfile::TempDir,
}

impl S3TestServer {
    /// Starts a server on a free port.
    pub async fn start() -> Self {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket folder");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
        let mut builder = s3s::service::S3ServiceBuilder::new(Peer {
            fs,
            root: dir.path().to_owned(),
        });
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build().into_shared();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = server.serve_connection(TokioIo::new(socket), service).await;
                });
            }
        });
        Self {
            endpoint: format!("http://{addr}"),
            dir,
        }
    }

    /// A store configuration for this server.
    pub fn config(&self, part_size: usize) -> S3Config {
        S3Config {
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            endpoint: Some(self.endpoint.clone()),
            force_path_style: true,
            credentials: aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"),
            ),
            part_size,
            timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// `s3s-fs` with S3's ETags in `ListParts`: every call the S3 backend makes is passed on.
pub struct Peer {
    fs: s3s_fs::FileSystem,
    root: std::path::PathBuf,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("root", &self.root).finish()
    }
}

/// Passes the named calls on to `s3s-fs`, and adds `list_parts`.
macro_rules! peer {
    ($($call:ident: $input:ident => $output:ident),* $(,)?) => {
        #[async_trait::async_trait]
        impl s3s::S3 for Peer {
            $(
                async fn $call(
                    &self,
                    req: s3s::S3Request<s3s::dto::$input>,
                ) -> s3s::S3Result<s3s::S3Response<s3s::dto::$output>> {
                    self.fs.$call(req).await
                }
            )*

            async fn list_parts(
                &self,
                req: s3s::S3Request<s3s::dto::ListPartsInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListPartsOutput>> {
                use md5::Digest;
                let upload_id = req.input.upload_id.clone();
                let mut res = self.fs.list_parts(req).await?;
                for part in res.output.parts.iter_mut().flatten() {
                    let Some(number) = part.part_number else { continue };
                    let path = self.root.join(format!(".upload_id-{upload_id}.part-{number}"));
                    if let Ok(bytes) = tokio::fs::read(&path).await {
                        let md5: [u8; 16] = md5::Md5::digest(&bytes).into();
                        part.e_tag = Some(format!("\"{}\"", data_encoding::HEXLOWER.encode(&md5)));
                    }
                }
                if let Some(parts) = res.output.parts.as_mut() {
                    parts.sort_by_key(|p| p.part_number);
                }
                res.output.is_truncated = Some(false);
                Ok(res)
            }
        }
    };
}

peer! {
    head_bucket: HeadBucketInput => HeadBucketOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    get_object: GetObjectInput => GetObjectOutput,
    put_object: PutObjectInput => PutObjectOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    copy_object: CopyObjectInput => CopyObjectOutput,
    list_objects: ListObjectsInput => ListObjectsOutput,
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    create_bucket: CreateBucketInput => CreateBucketOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
}

/// Moves the open upload `id` to `state` (`completing`, `aborting`) as a request
/// claiming it does; false when it was not open.
pub async fn claim_upload(conn: &mut shared_db::DbConn, id: &str, state: &str) -> bool {
    crate::store::uploads::claim(conn, id, state)
        .await
        .expect("claiming an upload")
}

/// Returns the upload `id` to `open`, as a failed completion does.
pub async fn reopen_upload(conn: &mut shared_db::DbConn, id: &str) {
    crate::store::uploads::reopen(conn, id)
        .await
        .expect("reopening an upload");
}
