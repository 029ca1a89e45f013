//! Amazon SNS messages (how SES reports bounces, complaints and deliveries): parsed,
//! their signatures verified against a certificate fetched only from a pinned
//! `amazonaws.com` host, their age checked, and subscriptions confirmed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

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

/// Verifier settings.
#[derive(Debug, Clone)]
pub struct SnsConfig {
    /// Host patterns certificates may come from; `*` stands for one label.
    pub cert_hosts: Vec<String>,
    /// Allow `http://` certificate URLs (test servers only).
    pub allow_http: bool,
    /// Accept only these topics (any when empty).
    pub topics: Vec<String>,
    /// How old a message may be.
    pub max_age: Duration,
}

impl Default for SnsConfig {
    fn default() -> Self {
        Self {
            cert_hosts: vec!["sns.*.amazonaws.com".into(), "sns.*.amazonaws.com.cn".into()],
            allow_http: false,
            topics: Vec::new(),
            max_age: Duration::from_secs(3600),
        }
    }
}

/// Whether `host` matches `pattern` (`*` = exactly one non-empty label).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.len() == h.len()
        && p.iter()
            .zip(&h)
            .all(|(p, h)| !h.is_empty() && (*p == "*" || p.eq_ignore_ascii_case(h)))
}

type Https = HttpsConnector<HttpConnector>;

/// Verifies SNS messages and confirms subscriptions.
pub struct SnsVerifier {
    config: SnsConfig,
    client: Client<Https, Empty<Bytes>>,
    keys: Mutex<HashMap<String, Vec<u8>>>,
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
        Ok(Self {
            config,
            client: Client::builder(TokioExecutor::new()).build(https),
            keys: Mutex::new(HashMap::new()),
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
        self.check_url(url, "SubscribeURL")?;
        self.fetch(url).await.map(|_| ())
    }

    fn check_url(&self, raw: &str, what: &str) -> Result<url::Url, SnsError> {
        let url = url::Url::parse(raw).map_err(|_| SnsError::Forged(format!("{what} is not a URL")))?;
        let scheme_ok = url.scheme() == "https" || (self.config.allow_http && url.scheme() == "http");
        let host = url.host_str().unwrap_or_default();
        if !scheme_ok || !self.config.cert_hosts.iter().any(|p| host_matches(p, host)) {
            return Err(SnsError::Forged(format!("{what} {raw} is not on a trusted SNS host")));
        }
        Ok(url)
    }

    async fn public_key(&self, raw: &str) -> Result<Vec<u8>, SnsError> {
        let url = self.check_url(raw, "SigningCertURL")?;
        if !url.path().ends_with(".pem") {
            return Err(SnsError::Forged("SigningCertURL is not a .pem".into()));
        }
        if let Some(k) = self.keys.lock().ok().and_then(|k| k.get(raw).cloned()) {
            return Ok(k);
        }
        let pem = self.fetch(raw).await?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
            .map_err(|_| SnsError::Forged("the signing certificate is not PEM".into()))?;
        let cert = pem
            .parse_x509()
            .map_err(|_| SnsError::Forged("the signing certificate does not parse".into()))?;
        if !cert.validity().is_valid() {
            return Err(SnsError::Forged("the signing certificate has expired".into()));
        }
        let key = cert.public_key().subject_public_key.data.to_vec();
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(raw.to_owned(), key.clone());
        }
        Ok(key)
    }

    async fn fetch(&self, url: &str) -> Result<Bytes, SnsError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| SnsError::Forged(format!("{url} is not a URI")))?;
        let unavailable = |e: String| SnsError::Unavailable(format!("fetching {url}: {e}"));
        let res = tokio::time::timeout(Duration::from_secs(10), self.client.get(uri))
            .await
            .map_err(|_| unavailable("timed out".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        if !res.status().is_success() {
            return Err(unavailable(format!("status {}", res.status())));
        }
        let body = Limited::new(res.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(body.to_bytes())
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
