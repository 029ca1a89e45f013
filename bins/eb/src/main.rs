//! `eb`: Event Bridge for people at a terminal.
//!
//! ```text
//! eb --url https://bridge.example.com --key eb_... blobs put model.bin ai/models/model.bin
//! ```
//!
//! Transfers stream with a progress bar (rate and ETA) on a terminal and plain lines
//! otherwise; an upload sends its SHA-256 so the gateway refuses a corrupted body, a
//! download is checked against the stored SHA-256 at the end, and an interrupted download
//! resumes where it stopped (`Range` with `If-Range`, so a changed object starts over).

mod api;
mod args;
mod multipart;
mod transfer;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use futures_util::StreamExt;
use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::api::{Api, Problem, object_path, urlencode};
use crate::args::{Blobs, Cli, Command, Emails, Events, Licenses};
use crate::transfer::{get, ls, put};

fn licence_lines(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().map(str::to_owned).unwrap_or_else(|| v[k].to_string());
    let mut out = format!(
        "{}  {}  {}  {}\nowner {}  machines {}/{}  expires {}",
        s("id"),
        s("product"),
        s("status"),
        s("name"),
        s("owner_email"),
        v["machines_count"],
        v["max_machines"],
        v["expires_at"].as_str().unwrap_or("never")
    );
    if let Some(key) = v["key"].as_str() {
        out.push_str(&format!("\nkey {key}  (shown only now: give it to the customer)"));
    }
    out
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::builder()
            .user_agent(concat!("eb/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?,
        url: cli.url.trim_end_matches('/').to_owned(),
        key: cli.key,
        json: cli.json,
    };
    match cli.command {
        Command::Blobs(Blobs::Put {
            file,
            target,
            content_type,
            part_size,
        }) => put(&api, &file, &target, content_type, part_size * 1024 * 1024).await,
        Command::Blobs(Blobs::Get { source, file }) => get(&api, &source, &file).await,
        Command::Blobs(Blobs::Ls { target, limit }) => ls(&api, &target, limit).await,
        Command::Blobs(Blobs::Rm { target }) => {
            let (ns, key) = object_path(&target)?;
            api.call(Method::DELETE, &format!("/api/v1/blobs/{ns}/{key}"), None)
                .await?;
            api.show(&json!({"deleted": target}), |_| format!("deleted {target}"));
            Ok(())
        }
        Command::Licenses(Licenses::Issue(i)) => {
            let mut body = json!({"product": i.product, "name": i.name, "owner_email": i.owner,
                "entitlements": i.entitlements});
            for (k, v) in [
                ("duration", i.duration.map(Value::from)),
                ("max_machines", i.max_machines.map(Value::from)),
                ("policy_id", i.policy.map(Value::from)),
            ] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let v = api.call(Method::POST, "/api/v1/licenses", Some(body)).await?;
            api.show(&v, licence_lines);
            Ok(())
        }
        Command::Licenses(Licenses::Show { id }) => {
            let v = api
                .call(Method::GET, &format!("/api/v1/licenses/{}", urlencode(&id)), None)
                .await?;
            api.show(&v, licence_lines);
            Ok(())
        }
        Command::Licenses(Licenses::Validate {
            key,
            fingerprint,
            product,
        }) => {
            let body = json!({"key": key, "fingerprint": fingerprint, "product": product});
            let v = api.call(Method::POST, "/api/v1/licenses/validate", Some(body)).await?;
            api.show(&v, |v| {
                format!(
                    "{}: {} ({})",
                    if v["valid"] == true { "valid" } else { "not valid" },
                    v["code"].as_str().unwrap_or_default(),
                    v["detail"].as_str().unwrap_or_default()
                )
            });
            if v["valid"] != true {
                bail!("the licence is not valid: {}", v["code"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        Command::Licenses(Licenses::Suspend { id }) => licence_action(&api, &id, "suspend").await,
        Command::Licenses(Licenses::Reinstate { id }) => licence_action(&api, &id, "reinstate").await,
        Command::Licenses(Licenses::Revoke { id }) => licence_action(&api, &id, "revoke").await,
        Command::Emails(Emails::Send {
            to,
            subject,
            text,
            html,
            template,
            vars,
            idempotency_key,
        }) => {
            let mut body = json!({"to": to});
            for (k, v) in [("subject", subject), ("text", text), ("html", html)] {
                if let Some(v) = v {
                    body[k] = Value::from(v);
                }
            }
            if let Some(name) = template {
                let variables: serde_json::Map<String, Value> =
                    vars.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
                body["template"] = json!({"name": name, "variables": variables});
            }
            let key = idempotency_key.unwrap_or_else(|| format!("eb-cli-{}", random_id()));
            let request = api
                .request(Method::POST, "/api/v1/emails")
                .header("Idempotency-Key", key)
                .json(&body);
            let v: Value = api.send(request).await?.json().await?;
            api.show(&v, |v| {
                format!("queued {} ({})", v["id"].as_str().unwrap_or_default(), v["status"])
            });
            Ok(())
        }
        Command::Emails(Emails::Show { id }) => {
            let v = api
                .call(Method::GET, &format!("/api/v1/emails/{}", urlencode(&id)), None)
                .await?;
            api.show(&v, |v| {
                let mut out = format!(
                    "{}  {}  {}\nto {}",
                    v["id"].as_str().unwrap_or_default(),
                    v["status"].as_str().unwrap_or_default(),
                    v["subject"].as_str().unwrap_or_default(),
                    v["to"]
                );
                for step in v["history"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "\n  {}  {}",
                        step["at"].as_str().unwrap_or_default(),
                        step["type"].as_str().unwrap_or_default()
                    ));
                }
                out
            });
            Ok(())
        }
        Command::Events(Events::Tail { kind }) => tail(&api, kind).await,
    }
}

async fn licence_action(api: &Api, id: &str, action: &str) -> anyhow::Result<()> {
    let v = api
        .call(
            Method::POST,
            &format!("/api/v1/licenses/{}/{action}", urlencode(id)),
            None,
        )
        .await?;
    api.show(&v, licence_lines);
    Ok(())
}

fn random_id() -> String {
    let mut bytes = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap_or_default();
    data_encoding::HEXLOWER.encode(&bytes)
}

/// Follows the Server-Sent Events tail, reconnecting after a drop from the last id seen.
async fn tail(api: &Api, kind: Option<String>) -> anyhow::Result<()> {
    let mut last_id: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let mut path = "/api/v1/events/stream".to_owned();
        if let Some(kind) = &kind {
            path.push_str(&format!("?type={}", urlencode(kind)));
        }
        let mut request = api
            .request(Method::GET, &path)
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = &last_id {
            request = request.header("Last-Event-ID", id);
        }
        match api.send(request).await {
            Err(e) if e.downcast_ref::<Problem>().is_some() => return Err(e),
            Err(e) => {
                failures += 1;
                if failures > 5 {
                    return Err(e);
                }
                eprintln!("tail: {e:#}; reconnecting");
            }
            Ok(response) => {
                failures = 0;
                let mut body = response.bytes_stream();
                let mut buffer = String::new();
                let (mut data, mut id) = (Vec::<String>::new(), None::<String>);
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) = chunk else { break };
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(nl) = buffer.find('\n') {
                        let line = buffer[..nl].trim_end_matches('\r').to_owned();
                        buffer.drain(..=nl);
                        if line.is_empty() {
                            if !data.is_empty() {
                                let event: Value = serde_json::from_str(&data.join("\n")).unwrap_or(Value::Null);
                                last_id = id.take().or(last_id.take());
                                api.show(&event, |e| {
                                    format!(
                                        "{}  {:<28} {:<36} {}",
                                        e["occurred_at"].as_str().unwrap_or_default(),
                                        e["type"].as_str().unwrap_or_default(),
                                        e["subject"].as_str().unwrap_or("-"),
                                        e["data"]
                                    )
                                });
                            }
                            data.clear();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                        } else if let Some(v) = line.strip_prefix("id:") {
                            id = Some(v.trim().to_owned());
                        }
                    }
                }
                eprintln!("tail: the stream ended; reconnecting");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_progress_template_parses() {
        assert!(indicatif::ProgressStyle::with_template(crate::transfer::BAR).is_ok());
    }

    #[test]
    fn object_paths_keep_slashes_and_encode_the_rest() {
        let (ns, key) = crate::api::object_path("ai/models/v 1/ü.bin").unwrap_or_default();
        assert_eq!((ns.as_str(), key.as_str()), ("ai", "models/v%201/%C3%BC.bin"));
        assert!(crate::api::object_path("ai").is_err());
        assert!(crate::api::object_path("/key").is_err());
        assert!(crate::api::object_path("ai/").is_err());
    }
}
