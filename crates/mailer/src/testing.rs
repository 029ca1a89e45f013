//! An SES endpoint for tests and benchmarks: moto in server mode, either the one named
//! by `TEST_SES_URL` (CI starts one) or a private `moto_server` started here. Outside CI
//! a missing moto skips with a visible message; under `CI=true` it fails.

#![allow(clippy::panic)] // test support: a missing peer under CI must fail the test

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::transport::{SesConfig, SesMailer};

/// A message moto received through `SendRawEmail`.
#[derive(Debug, Clone, Deserialize)]
pub struct SentRaw {
    /// SES's message id.
    pub id: String,
    /// The envelope sender.
    pub source: String,
    /// The envelope recipients (moto adds the header recipients again).
    pub destinations: Vec<String>,
    /// The MIME.
    pub raw_data: String,
}

/// A running moto SES endpoint.
pub struct SesTestServer {
    url: String,
    child: Option<Child>,
}

impl Drop for SesTestServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn skip_or_fail(why: String) -> Option<SesTestServer> {
    if shared_db::testing::in_ci() {
        panic!("an SES endpoint (moto) is required under CI=true: {why}");
    }
    eprintln!("SKIPPED: SES test: {why}; `pip install 'moto[server]'` or set TEST_SES_URL");
    None
}

impl SesTestServer {
    /// The shared endpoint, or a private one; `None` (after a `SKIPPED:` line) when
    /// neither can be had outside CI.
    pub async fn start() -> Option<Self> {
        if let Ok(url) = std::env::var("TEST_SES_URL") {
            let mut server = Self { url, child: None };
            return match server.wait_ready(Duration::from_secs(20)).await {
                Ok(()) => Some(server),
                Err(e) => skip_or_fail(format!("TEST_SES_URL={} does not answer: {e}", server.url)),
            };
        }
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => return skip_or_fail(format!("no free port: {e}")),
        };
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return skip_or_fail(format!("cannot start python3 -m moto.server: {e}")),
        };
        let mut server = Self {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        match server.wait_ready(Duration::from_secs(30)).await {
            Ok(()) => Some(server),
            Err(e) => skip_or_fail(format!("moto did not start: {e}")),
        }
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match reqwest::get(format!("{}/moto-api/data.json", self.url)).await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => return Err(format!("status {}", r.status())),
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e.to_string()),
                Err(_)
                    if self
                        .child
                        .as_mut()
                        .is_some_and(|c| c.try_wait().ok().flatten().is_some()) =>
                {
                    return Err("python3 -m moto.server exited: is moto installed?".into());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The endpoint URL (`AWS_ENDPOINT_URL_SES`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// SES settings for this endpoint.
    pub fn config(&self) -> SesConfig {
        SesConfig {
            region: "us-east-1".into(),
            endpoint: Some(self.url.clone()),
            credentials: aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("testing", "testing", None, None, "test"),
            ),
            configuration_set: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Verifies a sender identity (an address or a domain), as SES requires.
    pub async fn verify(&self, identity: &str) {
        let mailer = SesMailer::new(&self.config());
        let result = if identity.contains('@') {
            mailer
                .client()
                .verify_email_identity()
                .email_address(identity)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        } else {
            mailer
                .client()
                .verify_domain_identity()
                .domain(identity)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        };
        if let Err(e) = result {
            panic!("verifying {identity} on moto: {e}");
        }
    }

    /// Every raw message moto has received.
    pub async fn sent(&self) -> Vec<SentRaw> {
        let data: serde_json::Value = match reqwest::get(format!("{}/moto-api/data.json", self.url)).await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => panic!("reading moto's data: {e}"),
        };
        serde_json::from_value(data["ses"]["RawMessage"].clone()).unwrap_or_default()
    }

    /// The raw messages sent from `source`.
    pub async fn sent_from(&self, source: &str) -> Vec<SentRaw> {
        self.sent().await.into_iter().filter(|m| m.source == source).collect()
    }
}

/// The fixture certificate SNS test messages are signed under (test-only key pair).
pub const SNS_TEST_CERT: &str = include_str!("../tests/fixtures/sns-test-cert.pem");
/// Its PKCS#8 private key.
pub const SNS_TEST_KEY: &[u8] = include_bytes!("../tests/fixtures/sns-test-key.pk8");
/// Another key, for forgeries.
pub const SNS_OTHER_KEY: &[u8] = include_bytes!("../tests/fixtures/other-key.pk8");

/// Signs an SNS message (a JSON object) in place with SignatureVersion 2.
pub fn sign_sns(msg: &mut serde_json::Value, pkcs8: &[u8]) {
    msg["SignatureVersion"] = serde_json::json!("2");
    msg["Signature"] = serde_json::json!("");
    let parsed: crate::sns::SnsMessage = match serde_json::from_value(msg.clone()) {
        Ok(m) => m,
        Err(e) => panic!("not an SNS message: {e}"),
    };
    let pair = match ring::signature::RsaKeyPair::from_pkcs8(pkcs8) {
        Ok(p) => p,
        Err(e) => panic!("bad key: {e}"),
    };
    let mut sig = vec![0; pair.public().modulus_len()];
    if let Err(e) = pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        parsed.string_to_sign().as_bytes(),
        &mut sig,
    ) {
        panic!("signing: {e}");
    }
    msg["Signature"] = serde_json::json!(data_encoding::BASE64.encode(&sig));
}

/// A signed SNS delivery of `kind` carrying `message`, from `cert_url`; `extra` fields
/// (a JSON object: `Subject`, `Token`, `SubscribeURL`...) are added before signing.
pub fn sns_message(
    kind: &str,
    topic: &str,
    message: &str,
    cert_url: &str,
    extra: serde_json::Value,
    pkcs8: &[u8],
) -> serde_json::Value {
    let mut msg = serde_json::json!({
        "Type": kind,
        "MessageId": uuid::Uuid::now_v7().to_string(),
        "TopicArn": topic,
        "Message": message,
        "Timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "SigningCertURL": cert_url,
    });
    if let Some(fields) = extra.as_object() {
        for (k, v) in fields {
            msg[k] = v.clone();
        }
    }
    sign_sns(&mut msg, pkcs8);
    msg
}
