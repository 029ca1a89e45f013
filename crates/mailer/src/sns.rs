//! Amazon SNS messages (how SES reports bounces, complaints and deliveries): parsed,
//! their signatures verified against a certificate fetched only from a pinned
//! `amazonaws.com` host, their age checked, and subscriptions confirmed.
//!
//! Certificates are downloaded within [`FETCH_TIMEOUT`] and [`MAX_CERT_BYTES`], and their
//! keys kept in a bounded cache whose entries expire.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;

/// An SNS HTTP(S) delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct SnsMessage {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// SNS's id (unique per message; repeats are redeliveries).
    #[serde(rename = "MessageId")]
    pub message_id: String,
    /// For confirmations.
    #[serde(rename = "Token", default)]
    pub token: Option<String>,
    /// The topic.
    #[serde(rename = "TopicArn")]
    pub topic_arn: String,
    /// A notification's subject.
    #[serde(rename = "Subject", default)]
    pub subject: Option<String>,
    /// The payload (for SES, a JSON document).
    #[serde(rename = "Message")]
    pub message: String,
    /// Where to confirm a subscription.
    #[serde(rename = "SubscribeURL", default)]
    pub subscribe_url: Option<String>,
    /// When SNS sent it.
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    /// `1` (SHA1withRSA) or `2` (SHA256withRSA).
    #[serde(rename = "SignatureVersion")]
    pub signature_version: String,
    /// Base64.
    #[serde(rename = "Signature")]
    pub signature: String,
    /// The signing certificate.
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
}

impl SnsMessage {
    /// The text SNS signs: chosen fields as `name\nvalue\n`, in order.
    pub fn string_to_sign(&self) -> String {
        let mut fields: Vec<(&str, &str)> = vec![("Message", &self.message), ("MessageId", &self.message_id)];
        if self.kind == "Notification" {
            if let Some(s) = &self.subject {
                fields.push(("Subject", s));
            }
        } else {
            fields.push(("SubscribeURL", self.subscribe_url.as_deref().unwrap_or_default()));
        }
        fields.push(("Timestamp", &self.timestamp));
        if self.kind != "Notification" {
            fields.push(("Token", self.token.as_deref().unwrap_or_default()));
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", &self.kind));
        fields.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect()
    }
}

/// Why an SNS message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    /// Not an SNS message.
    #[error("{0}")]
    Malformed(String),
    /// The signature, certificate host, age or topic is wrong.
    #[error("{0}")]
    Forged(String),
    /// The certificate or confirmation URL could not be reached (SNS will retry).
    #[error("{0}")]
    Unavailable(String),
}

/// Longest a certificate download (or a subscription confirmation) may take, answer
/// and body together.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest certificate accepted (SNS's are about 2 KiB).
pub const MAX_CERT_BYTES: usize = 16 * 1024;

/// Verifier settings.
#[derive(Debug, Clone)]
pub struct SnsConfig {
    /// Host patterns certificates may come from; `*` stands for one AWS region label
    /// (see [`host_matches`]).
    pub cert_hosts: Vec<String>,
    /// Allow `http://` certificate URLs (test servers only).
    pub allow_http: bool,
    /// Accept only these topics (any when empty).
    pub topics: Vec<String>,
    /// How old a message may be.
    pub max_age: Duration,
    /// Signing keys kept at most (the least recently used goes first).
    pub cert_cache_size: usize,
    /// How long a signing key is kept (never past its certificate's expiry).
    pub cert_cache_ttl: Duration,
}

impl Default for SnsConfig {
    fn default() -> Self {
        Self {
            cert_hosts: vec!["sns.*.amazonaws.com".into(), "sns.*.amazonaws.com.cn".into()],
            allow_http: false,
            topics: Vec::new(),
            max_age: Duration::from_secs(3600),
            cert_cache_size: 32,
            cert_cache_ttl: Duration::from_secs(3600),
        }
    }
}

/// Whether `label` has the shape of an AWS region: two letters, one or more groups of
/// letters, and a number, joined by hyphens (`us-east-1`, `eu-central-2`,
/// `us-gov-west-1`, `cn-northwest-1`, `ap-southeast-7`).
pub fn is_region(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [area, middle @ .., number] if !middle.is_empty() => {
            area.len() == 2
                && letters(area)
                && middle.iter().all(|m| letters(m))
                && !number.is_empty()
                && number.len() <= 3
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// Whether `host` matches `pattern`: labels compared without regard to case, and `*`
/// standing for exactly one label shaped like an AWS region ([`is_region`]), so that
/// `sns.*.amazonaws.com` takes `sns.us-east-1.amazonaws.com` but not
/// `sns.s3.amazonaws.com` (the S3 host of a bucket named `sns`).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.len() == h.len()
        && p.iter().zip(&h).all(|(p, h)| {
            !h.is_empty()
                && if *p == "*" {
                    is_region(h)
                } else {
                    p.eq_ignore_ascii_case(h)
                }
        })
}

/// A cached signing key and when it stops being used.
struct CachedKey {
    key: Vec<u8>,
    until: Instant,
}

type Https = HttpsConnector<HttpConnector>;

/// Verifies SNS messages and confirms subscriptions.
pub struct SnsVerifier {
    config: SnsConfig,
    client: Client<Https, Empty<Bytes>>,
    keys: Mutex<lru::LruCache<String, CachedKey>>,
}

impl SnsVerifier {
    /// A verifier with its own HTTPS client (system roots).
    pub fn new(config: SnsConfig) -> Result<Self, SnsError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| SnsError::Unavailable(format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let size = NonZeroUsize::new(config.cert_cache_size).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            config,
            client: Client::builder(TokioExecutor::new()).build(https),
            keys: Mutex::new(lru::LruCache::new(size)),
        })
    }

    /// Parses and verifies a delivery's body.
    pub async fn verify(&self, body: &[u8]) -> Result<SnsMessage, SnsError> {
        let msg: SnsMessage =
            serde_json::from_slice(body).map_err(|e| SnsError::Malformed(format!("not an SNS message: {e}")))?;
        if !matches!(
            msg.kind.as_str(),
            "Notification" | "SubscriptionConfirmation" | "UnsubscribeConfirmation"
        ) {
            return Err(SnsError::Malformed(format!("unknown Type `{}`", msg.kind)));
        }
        if !self.config.topics.is_empty() && !self.config.topics.contains(&msg.topic_arn) {
            return Err(SnsError::Forged(format!(
                "topic {} is not accepted here",
                msg.topic_arn
            )));
        }
        let sent: DateTime<Utc> = msg
            .timestamp
            .parse()
            .map_err(|_| SnsError::Malformed("Timestamp is not RFC 3339".into()))?;
        let age = Utc::now().signed_duration_since(sent);
        if age > chrono::Duration::from_std(self.config.max_age).unwrap_or(chrono::Duration::MAX)
            || age < chrono::Duration::minutes(-5)
        {
            return Err(SnsError::Forged(format!(
                "Timestamp {} is outside the accepted window",
                msg.timestamp
            )));
        }
        let algorithm: &'static dyn signature::VerificationAlgorithm = match msg.signature_version.as_str() {
            "1" => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &signature::RSA_PKCS1_2048_8192_SHA256,
            v => return Err(SnsError::Forged(format!("SignatureVersion `{v}` is not supported"))),
        };
        let sig = data_encoding::BASE64
            .decode(msg.signature.as_bytes())
            .map_err(|_| SnsError::Forged("Signature is not base64".into()))?;
        let key = self.public_key(&msg.signing_cert_url).await?;
        UnparsedPublicKey::new(algorithm, &key)
            .verify(msg.string_to_sign().as_bytes(), &sig)
            .map_err(|_| SnsError::Forged("the signature does not match".into()))?;
        Ok(msg)
    }

    /// Visits the `SubscribeURL` of a verified confirmation (pinned like certificates).
    pub async fn confirm(&self, msg: &SnsMessage) -> Result<(), SnsError> {
        let url = msg
            .subscribe_url
            .as_deref()
            .ok_or_else(|| SnsError::Malformed("no SubscribeURL".into()))?;
        let url = self.check_url(url, "SubscribeURL")?;
        self.fetch(url.as_str(), 64 * 1024).await.map(|_| ())
    }

    /// Checks a URL taken from a message: HTTPS (or HTTP when allowed) on a trusted
    /// host, without user info or a fragment (neither has a use here; both only make
    /// one resource look like many).
    fn check_url(&self, raw: &str, what: &str) -> Result<url::Url, SnsError> {
        let url = url::Url::parse(raw).map_err(|_| SnsError::Forged(format!("{what} is not a URL")))?;
        let scheme_ok = url.scheme() == "https" || (self.config.allow_http && url.scheme() == "http");
        let host = url.host_str().unwrap_or_default();
        if !scheme_ok || !self.config.cert_hosts.iter().any(|p| host_matches(p, host)) {
            return Err(SnsError::Forged(format!("{what} {raw} is not on a trusted SNS host")));
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(SnsError::Forged(format!("{what} {raw} has user info or a fragment")));
        }
        Ok(url)
    }

    async fn public_key(&self, raw: &str) -> Result<Vec<u8>, SnsError> {
        let url = self.check_url(raw, "SigningCertURL")?;
        if !url.path().ends_with(".pem") {
            return Err(SnsError::Forged("SigningCertURL is not a .pem".into()));
        }
        // A certificate is named by its path alone: a query would make one certificate
        // look like many (each a fetch, each evicting a real key from the cache).
        if url.query().is_some() {
            return Err(SnsError::Forged(format!("SigningCertURL {raw} has a query string")));
        }
        // Cached by scheme, host (and port) and path: the URL as checked, nothing else.
        let name = format!(
            "{}://{}:{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default(),
            url.path()
        );
        if let Some(k) = self.cached(&name) {
            return Ok(k);
        }
        let pem = self.fetch(url.as_str(), MAX_CERT_BYTES).await?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
            .map_err(|_| SnsError::Forged("the signing certificate is not PEM".into()))?;
        let cert = pem
            .parse_x509()
            .map_err(|_| SnsError::Forged("the signing certificate does not parse".into()))?;
        if !cert.validity().is_valid() {
            return Err(SnsError::Forged("the signing certificate has expired".into()));
        }
        let key = cert.public_key().subject_public_key.data.to_vec();
        let expires = u64::try_from(cert.validity().time_to_expiration().map_or(0, |d| d.whole_seconds())).unwrap_or(0);
        let keep = self.config.cert_cache_ttl.min(Duration::from_secs(expires));
        if let (Ok(mut keys), Some(until)) = (self.keys.lock(), Instant::now().checked_add(keep)) {
            keys.put(
                name,
                CachedKey {
                    key: key.clone(),
                    until,
                },
            );
        }
        Ok(key)
    }

    /// The cached key of a certificate URL, unless it has expired (then it is dropped).
    fn cached(&self, raw: &str) -> Option<Vec<u8>> {
        let mut keys = self.keys.lock().ok()?;
        match keys.get(raw) {
            Some(k) if Instant::now() < k.until => Some(k.key.clone()),
            Some(_) => {
                keys.pop(raw);
                None
            }
            None => None,
        }
    }

    /// GETs `url`: at most `limit` bytes, all within [`FETCH_TIMEOUT`].
    async fn fetch(&self, url: &str, limit: usize) -> Result<Bytes, SnsError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| SnsError::Forged(format!("{url} is not a URI")))?;
        let unavailable = |e: String| SnsError::Unavailable(format!("fetching {url}: {e}"));
        let exchange = async {
            let res = self.client.get(uri).await.map_err(|e| unavailable(e.to_string()))?;
            if !res.status().is_success() {
                return Err(unavailable(format!("status {}", res.status())));
            }
            let body = Limited::new(res.into_body(), limit)
                .collect()
                .await
                .map_err(|e| unavailable(format!("{e} (at most {limit} bytes)")))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| unavailable(format!("timed out after {} s", FETCH_TIMEOUT.as_secs())))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Arbitrary bodies and hosts: parsed or refused, never a panic.
        #[test]
        fn arbitrary_input_never_panics(body in "\\PC{0,200}", host in "[a-z.*-]{0,40}", pattern in "[a-z.*-]{0,40}") {
            if let Ok(m) = serde_json::from_str::<SnsMessage>(&body) {
                let _ = m.string_to_sign();
            }
            let _ = host_matches(&pattern, &host);
        }
    }

    #[test]
    fn host_patterns() {
        assert!(host_matches("sns.*.amazonaws.com", "sns.eu-west-1.amazonaws.com"));
        for region in [
            "us-east-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "eu-central-2",
            "ca-west-1",
        ] {
            assert!(
                host_matches("sns.*.amazonaws.com", &format!("sns.{region}.amazonaws.com")),
                "{region}"
            );
        }
        assert!(host_matches(
            "sns.*.amazonaws.com.cn",
            "sns.cn-northwest-1.amazonaws.com.cn"
        ));
        // The S3 hosts of a bucket named `sns`, and other labels that are no region.
        for not_region in [
            "s3",
            "s3-external-1",
            "s3-us-west-2",
            "s3-website-us-east-1",
            "dualstack",
            "compute-1",
            "us-east",
            "east-1",
            "u-east-1",
            "us-east-",
            "us--1",
            "us-east-1a",
            "us-east-12345",
            "",
        ] {
            assert!(
                !host_matches("sns.*.amazonaws.com", &format!("sns.{not_region}.amazonaws.com")),
                "{not_region}"
            );
        }
        assert!(!host_matches("sns.*.amazonaws.com", "sns.amazonaws.com"));
        assert!(!host_matches("sns.*.amazonaws.com", "sns.evil.com.amazonaws.com"));
        assert!(!host_matches(
            "sns.*.amazonaws.com",
            "sns.eu-west-1.amazonaws.com.evil.com"
        ));
        assert!(!host_matches("sns.*.amazonaws.com", "evilsns.eu-west-1.amazonaws.com"));
        assert!(host_matches("127.0.0.1", "127.0.0.1"));
    }
}
