//! Calls to the gateway, and its refusals shown as problems.

use anyhow::{Context, anyhow};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// A refusal from the gateway, shown as its problem.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = |k: &str| self.body.get(k).and_then(Value::as_str).unwrap_or_default();
        write!(f, "{} {}: {}", self.status.as_u16(), field("code"), field("detail"))?;
        if !field("request_id").is_empty() {
            write!(f, " (request {})", field("request_id"))?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
    pub(crate) key: Option<String>,
    pub(crate) json: bool,
}

impl Api {
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.url));
        match &self.key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    pub(crate) async fn send(&self, builder: RequestBuilder) -> anyhow::Result<Response> {
        let response = builder.send().await.context("reaching the gateway")?;
        if response.status().is_client_error() || response.status().is_server_error() {
            let status = response.status();
            let body = response.json().await.unwrap_or(Value::Null);
            return Err(Problem { status, body }.into());
        }
        Ok(response)
    }

    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut builder = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let response = self.send(builder).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        Ok(response.json().await?)
    }

    /// Prints the JSON with `--json`, else the lines `human` makes of it.
    /// A closed output (`eb events tail | head`) ends the program quietly, as it does
    /// for other Unix tools, rather than with a panic.
    pub(crate) fn show(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        use std::io::Write;
        let text = if self.json {
            serde_json::to_string_pretty(value).unwrap_or_default()
        } else {
            human(value)
        };
        if writeln!(std::io::stdout(), "{text}").is_err() {
            std::process::exit(0);
        }
    }
}

/// `namespace/key` split at the first slash, each part encoded for the path.
pub(crate) fn object_path(target: &str) -> anyhow::Result<(String, String)> {
    let (ns, key) = target
        .split_once('/')
        .filter(|(ns, key)| !ns.is_empty() && !key.is_empty())
        .ok_or_else(|| anyhow!("`{target}`: expected NAMESPACE/KEY"))?;
    let key = key.split('/').map(urlencode).collect::<Vec<_>>().join("/");
    Ok((urlencode(ns), key))
}

pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
