//! Where messages go: Amazon SES (`SendRawEmail`) or the development mailbox.

use std::time::Duration;

use aws_sdk_ses::config::{BehaviorVersion, Region};
use aws_sdk_ses::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ses::primitives::Blob;
use aws_sdk_ses::types::RawMessage;
use futures_util::future::BoxFuture;

/// Why a send failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Throttling, a 5xx, a timeout or no connection: try again later.
    #[error("{0}")]
    Transient(String),
    /// Refused for good (`MessageRejected`, an unverified sender...): the reason.
    #[error("{0}")]
    Permanent(String),
}

/// A sending account's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Recipients per second.
    pub max_send_rate: f64,
    /// Recipients per 24 hours.
    pub max_24_hour_send: f64,
    /// Recipients in the last 24 hours.
    pub sent_last_24_hours: f64,
}

/// How email leaves this gateway (`MAIL_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MailMode {
    /// Through Amazon SES.
    Ses,
    /// Captured by the dev mailbox: kept in the database, sent to no one.
    Dev,
    /// No transport: sends are refused (503 `not_configured`) and nothing is stored.
    NotConfigured,
}

impl MailMode {
    /// `ses`, `dev` or `not_configured`.
    pub fn as_str(self) -> &'static str {
        match self {
            MailMode::Ses => "ses",
            MailMode::Dev => "dev",
            MailMode::NotConfigured => "not_configured",
        }
    }
}

impl std::fmt::Display for MailMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sends a built MIME message.
pub trait Mailer: Send + Sync + 'static {
    /// `ses` or `dev`.
    fn name(&self) -> &'static str;

    /// True when messages are only kept, never delivered (the dev mailbox): what it
    /// "sends" is marked `captured`, not `sent`.
    fn captures(&self) -> bool {
        false
    }

    /// Sends `raw` from `source` to `destinations` (at most 50); returns the
    /// provider's message id.
    fn send<'a>(
        &'a self,
        source: &'a str,
        destinations: &'a [String],
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<String, SendError>>;

    /// The account's sending limits, if the transport has any.
    fn quota(&self) -> BoxFuture<'_, Result<Option<Quota>, SendError>>;
}

/// SES settings.
#[derive(Clone)]
pub struct SesConfig {
    /// `AWS_SES_REGION`.
    pub region: String,
    /// `AWS_ENDPOINT_URL_SES` (an SES-compatible endpoint).
    pub endpoint: Option<String>,
    /// Where the AWS credentials come from (static keys or the standard chain).
    pub credentials: aws_credential_types::provider::SharedCredentialsProvider,
    /// `SES_CONFIGURATION_SET`: where SES publishes delivery events.
    pub configuration_set: Option<String>,
    /// Per request.
    pub timeout: Duration,
}

impl std::fmt::Debug for SesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SesConfig")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &"***")
            .field("configuration_set", &self.configuration_set)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Amazon SES through `SendRawEmail`.
pub struct SesMailer {
    client: aws_sdk_ses::Client,
    configuration_set: Option<String>,
}

impl SesMailer {
    /// A client for the configured region or endpoint (rustls with ring).
    pub fn new(config: &SesConfig) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut builder = aws_sdk_ses::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(config.credentials.clone())
            .timeout_config(
                aws_sdk_ses::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(config.timeout)
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            )
            // The outbox retries with its own backoff; one attempt per job run.
            .retry_config(aws_sdk_ses::config::retry::RetryConfig::disabled())
            .http_client(http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_ses::Client::from_conf(builder.build()),
            configuration_set: config.configuration_set.clone(),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_ses::Client {
        &self.client
    }
}

/// SES error codes worth another try.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
    "TooManyRequestsException",
];

fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(e: SdkError<E>) -> SendError {
    match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("Unknown");
            let message = s.err().message().unwrap_or_default();
            let status = s.raw().status().as_u16();
            let text = format!("{code}: {message}");
            if TRANSIENT_CODES.contains(&code) || status >= 500 || status == 429 {
                SendError::Transient(text)
            } else {
                SendError::Permanent(text)
            }
        }
        SdkError::TimeoutError(_) => SendError::Transient("timed out talking to SES".into()),
        SdkError::DispatchFailure(d) => {
            SendError::Transient(format!("could not reach SES: {:?}", d.as_connector_error()))
        }
        SdkError::ResponseError(_) => SendError::Transient("SES sent an unreadable response".into()),
        _ => SendError::Transient(format!("{e:?}")),
    }
}

impl Mailer for SesMailer {
    fn name(&self) -> &'static str {
        "ses"
    }

    fn send<'a>(
        &'a self,
        source: &'a str,
        destinations: &'a [String],
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async move {
            let message = RawMessage::builder()
                .data(Blob::new(raw))
                .build()
                .map_err(|e| SendError::Permanent(e.to_string()))?;
            let out = self
                .client
                .send_raw_email()
                .source(source)
                .set_destinations(Some(destinations.to_vec()))
                .raw_message(message)
                .set_configuration_set_name(self.configuration_set.clone())
                .send()
                .await
                .map_err(classify)?;
            Ok(out.message_id)
        })
    }

    fn quota(&self) -> BoxFuture<'_, Result<Option<Quota>, SendError>> {
        Box::pin(async move {
            let q = self.client.get_send_quota().send().await.map_err(classify)?;
            Ok(Some(Quota {
                max_send_rate: q.max_send_rate,
                max_24_hour_send: q.max24_hour_send,
                sent_last_24_hours: q.sent_last24_hours,
            }))
        })
    }
}

/// The development mailbox: the outbox row already holds the exact MIME, so "sending"
/// only names it (the message is marked `captured`); read it back from
/// `GET /api/v1/emails/{id}/raw`.
#[derive(Debug, Default)]
pub struct DevMailbox;

impl Mailer for DevMailbox {
    fn name(&self) -> &'static str {
        "dev"
    }

    fn captures(&self) -> bool {
        true
    }

    fn send<'a>(
        &'a self,
        _source: &'a str,
        destinations: &'a [String],
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async move {
            tracing::info!(
                recipients = destinations.len(),
                bytes = raw.len(),
                "dev mailbox: captured, not sent"
            );
            Ok(format!("dev-{}", uuid::Uuid::now_v7()))
        })
    }

    fn quota(&self) -> BoxFuture<'_, Result<Option<Quota>, SendError>> {
        Box::pin(async { Ok(None) })
    }
}
