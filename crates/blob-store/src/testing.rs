//! A real S3 API for tests and benchmarks: `s3s` + `s3s-fs` serving a temporary folder
//! from this process, with one bucket. A test double only: it keeps no Content-Type, does
//! not group by delimiter, and would let `../` in a key escape its bucket (our key rules
//! refuse such keys before any backend sees them).
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
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
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
