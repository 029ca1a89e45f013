//! The storage section: the local folder or S3, the namespaces, and the largest shared
//! document.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shared_db::Backend;

use super::aws::{AwsCredentials, key_pair};
use super::{ConfigError, Lookup, bad, http_url, parse_bool, parse_num};

/// Where objects live, the namespaces, and the largest shared document.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The local storage backend's folder.
    pub blob_dir: PathBuf,
    /// Storage namespaces.
    pub namespaces: Vec<blob_store::namespace::Namespace>,
    /// The S3 backend, when `S3_BUCKET` is set.
    pub s3: Option<blob_store::S3Config>,
    /// The credentials S3 uses, when `S3_BUCKET` is set.
    pub s3_credentials: Option<AwsCredentials>,
    /// Largest shared document in bytes.
    pub max_document_bytes: usize,
}

impl StorageConfig {
    /// Reads `BLOB_*`, `S3_*`, `AWS_ENDPOINT_URL_S3` and `MAX_DOCUMENT_BYTES`. On MySQL the
    /// storage must be shared by every replica: S3, or a `BLOB_DIR` they all mount.
    pub fn parse(
        get: &Lookup<'_>,
        backend: Backend,
        data_dir: &Path,
        aws: &AwsCredentials,
    ) -> Result<Self, ConfigError> {
        let blob_dir = get("BLOB_DIR").map_or_else(|| data_dir.join("blobs"), PathBuf::from);
        let namespaces = match (get("BLOB_NAMESPACES"), get("BLOB_NAMESPACES_FILE")) {
            (Some(json), _) => blob_store::namespace::parse(&json).map_err(|m| bad("BLOB_NAMESPACES", m))?,
            (None, Some(path)) => {
                let json = std::fs::read_to_string(&path)
                    .map_err(|e| bad("BLOB_NAMESPACES_FILE", format!("cannot read {path}: {e}")))?;
                blob_store::namespace::parse(&json).map_err(|m| bad("BLOB_NAMESPACES_FILE", m))?
            }
            (None, None) => blob_store::namespace::defaults(),
        };
        let max_document_bytes = parse_num::<usize>(get, "MAX_DOCUMENT_BYTES", 1024 * 1024)?;
        let (s3, s3_credentials) = match get("S3_BUCKET") {
            None => (None, None),
            Some(bucket) => {
                let endpoint = http_url(get, "AWS_ENDPOINT_URL_S3")?;
                let part_mb = parse_num::<usize>(get, "S3_PART_SIZE_MB", 8)?;
                if !(5..=5120).contains(&part_mb) {
                    return Err(bad("S3_PART_SIZE_MB", "must be 5 to 5120"));
                }
                let credentials = match key_pair(
                    get,
                    "S3_ACCESS_KEY_ID",
                    "S3_SECRET_ACCESS_KEY",
                    None,
                    "S3_ACCESS_KEY_ID",
                )? {
                    Some(keys) => AwsCredentials::fixed(&keys),
                    None => aws.clone(),
                };
                let config = blob_store::S3Config {
                    bucket,
                    region: get("S3_REGION")
                        .or_else(|| get("AWS_SES_REGION"))
                        .unwrap_or_else(|| "us-east-1".into()),
                    endpoint,
                    force_path_style: parse_bool(get, "S3_FORCE_PATH_STYLE", false)?,
                    credentials: credentials.provider(),
                    part_size: part_mb * 1024 * 1024,
                    timeout: Duration::from_secs(parse_num::<u64>(get, "S3_TIMEOUT_SECS", 30)?.max(1)),
                };
                (Some(config), Some(credentials))
            }
        };
        // Replicas on MySQL share the database, so they must share the files too: a
        // folder of one replica's own would hold objects the others cannot serve.
        if backend == Backend::Mysql && s3.is_none() && get("BLOB_DIR").is_none() {
            return Err(bad(
                "S3_BUCKET",
                "the database is MySQL, so storage must be shared by every replica too: set S3_BUCKET \
                 (Amazon S3 or a compatible store), or BLOB_DIR to a folder every replica mounts",
            ));
        }
        Ok(Self {
            blob_dir,
            namespaces,
            s3,
            s3_credentials,
            max_document_bytes,
        })
    }
}
