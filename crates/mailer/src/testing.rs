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
            let server = Self { url, child: None };
            return match server.wait_ready(Duration::from_secs(20)).await {
                Ok(()) => Some(server),
                Err(e) => skip_or_fail(format!("TEST_SES_URL={} does not answer: {e}", server.url)),
            };
        }
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => return skip_or_fail(format!("no free port: {e}")),
        };
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return skip_or_fail(format!("cannot start moto_server: {e}")),
        };
        let server = Self {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        match server.wait_ready(Duration::from_secs(30)).await {
            Ok(()) => Some(server),
            Err(e) => skip_or_fail(format!("moto_server did not start: {e}")),
        }
    }

    async fn wait_ready(&self, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match reqwest::get(format!("{}/moto-api/data.json", self.url)).await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => return Err(format!("status {}", r.status())),
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e.to_string()),
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
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
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
