//! Uploads larger than one part, through the gateway's multipart API: each part `PUT`
//! to the URL the upload lists (S3 itself, or the gateway), its `ETag` checked against
//! the part's MD5, then the upload completed and the stored object's SHA-256 compared
//! with the file's.
//!
//! Resuming: while an upload is in progress its id is kept in `FILE.eb-upload` beside
//! the file, with the target and the file's size and modification time. A run that finds
//! that state for the same target and an unchanged file asks the gateway which parts it
//! holds, checks each against the file's bytes (MD5) and sends only the others. The state
//! file is removed once the object is stored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use md5::Digest;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::api::{Api, Problem};
use crate::transfer::Progress;

/// What a run leaves beside the file while its upload is in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) upload_id: String,
    pub(crate) target: String,
    pub(crate) size: u64,
    pub(crate) mtime_ns: u64,
}

impl State {
    fn to_json(&self) -> Value {
        json!({"upload_id": self.upload_id, "target": self.target, "size": self.size, "mtime_ns": self.mtime_ns})
    }

    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            upload_id: v["upload_id"].as_str()?.to_owned(),
            target: v["target"].as_str()?.to_owned(),
            size: v["size"].as_u64()?,
            mtime_ns: v["mtime_ns"].as_u64()?,
        })
    }
}

/// `FILE.eb-upload`.
pub(crate) fn state_path(file: &Path) -> PathBuf {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("upload");
    file.with_file_name(format!("{name}.eb-upload"))
}

/// The file's modification time in nanoseconds since the epoch.
pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn md5_etag(bytes: &[u8]) -> String {
    let md5: [u8; 16] = md5::Md5::digest(bytes).into();
    format!("\"{}\"", data_encoding::HEXLOWER.encode(&md5))
}

fn bare(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// One part of the file, read whole (a part is at most the part size: 8 MiB by default).
async fn read_part(file: &Path, offset: u64, size: u64) -> anyhow::Result<Vec<u8>> {
    let mut f = tokio::fs::File::open(file).await?;
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut buf = vec![0u8; usize::try_from(size)?];
    f.read_exact(&mut buf)
        .await
        .with_context(|| format!("reading {} (did it change?)", file.display()))?;
    Ok(buf)
}

/// The upload to continue (from the state file, when it still describes this file and
/// target and the gateway still has it), or a new one.
async fn upload_for(
    api: &Api,
    file: &Path,
    ns: &str,
    target: &str,
    request: Value,
    current: &State,
) -> anyhow::Result<(Value, bool)> {
    let path = state_path(file);
    if let Ok(text) = tokio::fs::read_to_string(&path).await
        && let Some(saved) = serde_json::from_str::<Value>(&text)
            .ok()
            .as_ref()
            .and_then(State::from_json)
    {
        if saved.target == target && saved.size == current.size && saved.mtime_ns == current.mtime_ns {
            let found = api
                .send(api.request(Method::GET, &format!("/api/v1/blobs/{ns}/uploads/{}", saved.upload_id)))
                .await;
            match found {
                Ok(res) => return Ok((res.json().await?, true)),
                Err(e)
                    if e.downcast_ref::<Problem>()
                        .is_some_and(|p| p.status == StatusCode::NOT_FOUND) =>
                {
                    eprintln!("the earlier upload of {target} is gone (completed, aborted or expired); starting again");
                }
                Err(e) => return Err(e),
            }
        } else {
            eprintln!(
                "{} describes another file or target; starting a new upload",
                path.display()
            );
            // The earlier upload's parts are of other bytes: drop them now rather than
            // leave them to the gateway's sweep (a day). Its namespace is the target's.
            if let Some((old_ns, _)) = saved.target.split_once('/') {
                let old_ns = crate::api::urlencode(old_ns);
                let _ = api
                    .send(api.request(
                        Method::DELETE,
                        &format!("/api/v1/blobs/{old_ns}/uploads/{}", saved.upload_id),
                    ))
                    .await;
            }
        }
    }
    let upload: Value = api
        .send(
            api.request(Method::POST, &format!("/api/v1/blobs/{ns}/uploads"))
                .json(&request),
        )
        .await?
        .json()
        .await?;
    let state = State {
        upload_id: upload["id"].as_str().unwrap_or_default().to_owned(),
        ..current.clone()
    };
    tokio::fs::write(&path, serde_json::to_vec_pretty(&state.to_json())?)
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((upload, false))
}

/// Uploads `file` (`size` bytes, SHA-256 `sha256`) to `ns`/`key` in parts of `part_size`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn put(
    api: &Api,
    file: &Path,
    target: &str,
    ns: &str,
    raw_key: &str,
    content_type: Option<String>,
    sha256: &str,
    part_size: u64,
) -> anyhow::Result<Value> {
    let meta = tokio::fs::metadata(file).await?;
    let current = State {
        upload_id: String::new(),
        target: target.to_owned(),
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
    };
    let mut request = json!({"key": raw_key, "size": current.size, "sha256": sha256, "part_size": part_size});
    if let Some(t) = content_type {
        request["content_type"] = json!(t);
    }
    let (upload, resumed) = upload_for(api, file, ns, target, request, &current).await?;
    let id = upload["id"].as_str().unwrap_or_default().to_owned();
    let received: HashMap<u64, (String, u64)> = upload["received"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["number"].as_u64()?,
                (p["etag"].as_str()?.to_owned(), p["size"].as_u64()?),
            ))
        })
        .collect();
    let parts = upload["parts"].as_array().cloned().unwrap_or_default();
    let mut progress = Progress::new(format!("put {target}"), Some(current.size), 0);
    // Parts go to their own URLs: S3's, or the gateway's signed ones; no API key.
    let direct = reqwest::Client::builder()
        .user_agent(concat!("eb/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (mut sent, mut kept) = (0, 0);
    let mut completed = Vec::with_capacity(parts.len());
    for part in &parts {
        let number = part["number"].as_u64().unwrap_or_default();
        let (offset, size) = (
            part["offset"].as_u64().unwrap_or_default(),
            part["size"].as_u64().unwrap_or_default(),
        );
        let bytes = read_part(file, offset, size).await?;
        let etag = md5_etag(&bytes);
        // A part the gateway holds is kept when it is this file's bytes.
        if let Some((held, held_size)) = received.get(&number)
            && *held_size == size
            && bare(held) == bare(&etag)
        {
            kept += 1;
            progress.advance(size);
            completed.push(json!({"number": number, "etag": held}));
            continue;
        }
        let mut req = direct
            .request(Method::PUT, part["url"].as_str().unwrap_or_default())
            .header(header::CONTENT_LENGTH, size);
        if let Some(headers) = part["headers"].as_object() {
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_str().unwrap_or_default());
            }
        }
        let res = req
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("sending part {number}; run the same command again to resume"))?;
        if !res.status().is_success() {
            let status = res.status();
            let body = res.json().await.unwrap_or(Value::Null);
            return Err(anyhow::Error::new(Problem { status, body }).context(format!(
                "part {number} was refused; run the same command again to resume"
            )));
        }
        let answered = res
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if bare(&answered) != bare(&etag) {
            bail!(
                "part {number} arrived damaged: its ETag is {answered}, its MD5 {etag}; run the same command again to resend it"
            );
        }
        sent += 1;
        progress.advance(size);
        completed.push(json!({"number": number, "etag": answered}));
    }
    progress.finish();
    if resumed {
        eprintln!("resumed upload {id}: {kept} parts were already there, {sent} sent");
    }
    let stored: Value = api
        .send(
            api.request(Method::POST, &format!("/api/v1/blobs/{ns}/uploads/{id}/complete"))
                .json(&json!({ "parts": completed })),
        )
        .await?
        .json()
        .await?;
    let _ = tokio::fs::remove_file(state_path(file)).await;
    Ok(stored)
}
