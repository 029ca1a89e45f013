//! AWS credentials for SES and S3: static keys when configured, otherwise the standard
//! chain (shared config and credentials files with `AWS_PROFILE`, EKS web identity, ECS
//! container credentials, EC2 instance metadata with IMDSv2), in the SDK's order.
//!
//! The SDK clients cache what a provider returns and fetch fresh temporary credentials
//! shortly before they expire. [`AwsCredentials::source`] says which link of the chain
//! answered last, for `gateway check` and the start-up log.

use std::sync::{Arc, Mutex};

use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use secrecy::{ExposeSecret, SecretString};

/// An access key pair (and session token) given in the configuration.
#[derive(Clone)]
pub struct StaticKeys {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// `AWS_SESSION_TOKEN`, for temporary keys.
    pub session_token: Option<SecretString>,
    /// Which variables they came from, for messages.
    pub from: &'static str,
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .finish()
    }
}

/// A credentials provider and a record of where its credentials came from.
#[derive(Clone)]
pub struct AwsCredentials {
    provider: SharedCredentialsProvider,
    source: Arc<Mutex<Option<&'static str>>>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("source", &self.source())
            .finish()
    }
}

/// One link of the chain, noting its name when it answers.
#[derive(Debug)]
struct Named<P> {
    name: &'static str,
    inner: P,
    source: Arc<Mutex<Option<&'static str>>>,
}

impl<P: ProvideCredentials> ProvideCredentials for Named<P> {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let found = self.inner.provide_credentials().await?;
            if let Ok(mut source) = self.source.lock() {
                *source = Some(self.name);
            }
            Ok(found)
        })
    }
}

/// The HTTPS client every AWS call uses: rustls with ring, like the SDK clients.
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

impl AwsCredentials {
    /// Fixed keys (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, or
    /// `S3_ACCESS_KEY_ID` / `S3_SECRET_ACCESS_KEY`).
    pub fn fixed(keys: &StaticKeys) -> Self {
        let credentials = Credentials::new(
            keys.access_key_id.clone(),
            keys.secret_access_key.expose_secret().to_owned(),
            keys.session_token.as_ref().map(|t| t.expose_secret().to_owned()),
            None,
            "event-bridge-static",
        );
        Self {
            provider: SharedCredentialsProvider::new(credentials),
            source: Arc::new(Mutex::new(Some(keys.from))),
        }
    }

    /// The standard chain after the environment keys (which the configuration reads):
    /// profile files, web identity, ECS container credentials, EC2 instance metadata.
    /// `region` is used where a link needs one (STS for web identity) and the
    /// environment names none.
    pub fn chain(region: Option<&str>) -> Self {
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok()
            .filter(|r| !r.is_empty())
            .or_else(|| region.map(str::to_owned));
        let conf = ProviderConfig::default()
            .with_http_client(https_client())
            .with_region(region.map(aws_config::Region::new));
        let source = Arc::new(Mutex::new(None));
        let named = |name: &'static str| (name, source.clone());
        let link =
            |(name, source): (&'static str, Arc<Mutex<Option<&'static str>>>), inner| Named { name, inner, source };
        let chain = CredentialsProviderChain::first_try(
            "Profile",
            link(
                named("profile (AWS_PROFILE, ~/.aws/config and credentials)"),
                SharedCredentialsProvider::new(
                    aws_config::profile::ProfileFileCredentialsProvider::builder()
                        .configure(&conf)
                        .build(),
                ),
            ),
        )
        .or_else(
            "WebIdentityToken",
            link(
                named("web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN: EKS)"),
                SharedCredentialsProvider::new(
                    aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                        .configure(&conf)
                        .build(),
                ),
            ),
        )
        .or_else(
            "EcsContainer",
            link(
                named("container credentials (AWS_CONTAINER_CREDENTIALS_*: ECS task role)"),
                SharedCredentialsProvider::new(
                    aws_config::ecs::EcsCredentialsProvider::builder()
                        .configure(&conf)
                        .build(),
                ),
            ),
        )
        .or_else(
            "Ec2InstanceMetadata",
            link(
                named("EC2 instance metadata (IMDSv2: instance profile)"),
                SharedCredentialsProvider::new(
                    aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                        .configure(&conf)
                        .build(),
                ),
            ),
        );
        Self {
            provider: SharedCredentialsProvider::new(chain),
            source,
        }
    }

    /// Whether both are the same provider (one cache, one source).
    pub fn same_as(&self, other: &AwsCredentials) -> bool {
        Arc::ptr_eq(&self.source, &other.source)
    }

    /// The provider to give an SDK client.
    pub fn provider(&self) -> SharedCredentialsProvider {
        self.provider.clone()
    }

    /// Where the last credentials came from (`None` before any were fetched).
    pub fn source(&self) -> Option<&'static str> {
        self.source.lock().ok().and_then(|s| *s)
    }

    /// Fetches credentials now: where they came from and when they expire, or why none
    /// could be had.
    pub async fn resolve(&self) -> Result<(&'static str, Option<std::time::SystemTime>), String> {
        match self.provider.provide_credentials().await {
            Ok(c) => Ok((self.source().unwrap_or("unknown"), c.expiry())),
            Err(e) => Err(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()),
        }
    }
}
