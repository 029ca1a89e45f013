//! Storage transfers: streamed, with progress, checked by SHA-256, downloads resumed.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::api::{Api, object_path, urlencode};

pub(crate) const BAR: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";

/// A progress display: a bar with rate and ETA on a terminal, a line every few seconds
/// otherwise (logs, CI), and a last line either way.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    pub(crate) fn new(what: String, total: Option<u64>, start_at: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
            // The template is a constant: it parses (a unit test checks it).
            if let Ok(style) = ProgressStyle::with_template(BAR) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.clone());
            bar.set_position(start_at);
            bar
        });
        Self {
            bar,
            what,
            total,
            done: start_at,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    pub(crate) fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.set_position(self.done),
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = Instant::now();
                eprintln!("{}", self.line());
            }
            None => {}
        }
    }

    pub(crate) fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        match self.total {
            Some(total) => format!(
                "{}: {} of {} bytes ({:.0}%), {:.1} MB/s",
                self.what,
                self.done,
                total,
                100.0 * self.done as f64 / total.max(1) as f64,
                rate / 1e6
            ),
            None => format!("{}: {} bytes, {:.1} MB/s", self.what, self.done, rate / 1e6),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{}", self.line());
    }
}

pub(crate) fn sha256_hex(digest: ring::digest::Digest) -> String {
    data_encoding::HEXLOWER.encode(digest.as_ref())
}

pub(crate) async fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        Ok(sha256_hex(ctx.finish()))
    })
    .await?
}

/// Uploads `file` to `target`: in one `PUT` when it fits in one part of `part_size`
/// bytes, else through a multipart upload (resumed when an earlier run left one); either
/// way the stored object's SHA-256 must be the file's.
pub(crate) async fn put(
    api: &Api,
    file: &Path,
    target: &str,
    content_type: Option<String>,
    part_size: u64,
) -> anyhow::Result<()> {
    let (ns, key) = object_path(target)?;
    let size = tokio::fs::metadata(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let sha256 = file_sha256(file).await?;
    if size > part_size {
        let raw_key = target.split_once('/').map(|(_, k)| k).unwrap_or_default();
        let stored = crate::multipart::put(api, file, target, &ns, raw_key, content_type, &sha256, part_size).await?;
        // The object as the gateway serves it: its SHA-256 must be the file's.
        let head = api
            .send(api.request(Method::HEAD, &format!("/api/v1/blobs/{ns}/{key}")))
            .await?;
        let served = head
            .headers()
            .get("x-checksum-sha256")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if served != sha256 {
            bail!("the stored object's SHA-256 `{served}` is not the file's {sha256}");
        }
        api.show(&stored, |v| {
            format!(
                "stored {target}: {} bytes in {} parts, sha256 {sha256} (verified)",
                v["size"],
                size.div_ceil(part_size)
            )
        });
        return Ok(());
    }
    let handle = tokio::fs::File::open(file).await?;
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Progress::new(
        format!("put {target}"),
        Some(size),
        0,
    )));
    let counted = progress.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(handle, 1 << 20).inspect(move |chunk| {
        if let (Ok(bytes), Ok(mut p)) = (chunk, counted.lock()) {
            p.advance(bytes.len() as u64);
        }
    });
    let mut request = api
        .request(Method::PUT, &format!("/api/v1/blobs/{ns}/{key}"))
        .header(header::CONTENT_LENGTH, size)
        .header("x-checksum-sha256", &sha256)
        .body(reqwest::Body::wrap_stream(stream));
    if let Some(t) = content_type {
        request = request.header(header::CONTENT_TYPE, t);
    }
    let stored: Value = api.send(request).await?.json().await?;
    if let Ok(p) = progress.lock() {
        p.finish();
    }
    if stored["sha256"].as_str() != Some(sha256.as_str()) {
        bail!(
            "the stored object's SHA-256 {} is not the file's {sha256}",
            stored["sha256"]
        );
    }
    api.show(&stored, |v| {
        format!("stored {target}: {} bytes, sha256 {}", v["size"], sha256)
    });
    Ok(())
}

pub(crate) async fn get(api: &Api, source: &str, file: &Path) -> anyhow::Result<()> {
    let (ns, key) = object_path(source)?;
    let path = format!("/api/v1/blobs/{ns}/{key}");
    // The whole object's SHA-256, to check the result against, and the ETag a resume relies on.
    let head = api.send(api.request(Method::HEAD, &path)).await?;
    let header_of = |name: &str| {
        head.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (etag, expected) = (header_of("etag"), header_of("x-checksum-sha256"));
    let part = file.with_file_name(format!(
        "{}.part",
        file.file_name().and_then(|n| n.to_str()).unwrap_or("download")
    ));
    let have = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
    let mut request = api.request(Method::GET, &path);
    // A partial file as long as the object (or longer) is not resumed: its range would be
    // unsatisfiable (416); it is fetched again whole.
    let size: u64 = header_of("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    if have > 0
        && have < size
        && let Some(etag) = &etag
    {
        request = request
            .header(header::RANGE, format!("bytes={have}-"))
            .header(header::IF_RANGE, etag);
    }
    let response = api.send(request).await?;
    let resumed = response.status() == StatusCode::PARTIAL_CONTENT;
    let start = if resumed { have } else { 0 };
    let total = response.content_length().map(|n| n + start);
    let mut out = if resumed {
        eprintln!("resuming {source} after {have} bytes");
        tokio::fs::OpenOptions::new().append(true).open(&part).await?
    } else {
        tokio::fs::File::create(&part).await?
    };
    let mut progress = Progress::new(format!("get {source}"), total, start);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the download broke off; run the same command again to resume")?;
        out.write_all(&chunk).await?;
        progress.advance(chunk.len() as u64);
    }
    out.flush().await?;
    drop(out);
    progress.finish();
    let actual = file_sha256(&part).await?;
    match &expected {
        Some(expected) if *expected != actual => {
            tokio::fs::remove_file(&part).await.ok();
            bail!(
                "checksum mismatch: got {actual}, the gateway stores {expected}; the partial file was removed, try again"
            );
        }
        Some(_) => {}
        None => eprintln!("warning: the gateway sent no x-checksum-sha256: {source} is not verified"),
    }
    tokio::fs::rename(&part, file).await?;
    let answer = json!({"file": file, "bytes": progress.done, "sha256": actual});
    api.show(&answer, |_| {
        format!("saved {} (sha256 {actual}, verified)", file.display())
    });
    Ok(())
}

pub(crate) async fn ls(api: &Api, target: &str, limit: u32) -> anyhow::Result<()> {
    let (ns, prefix) = target.split_once('/').unwrap_or((target, ""));
    let page = api
        .call(
            Method::GET,
            &format!(
                "/api/v1/blobs/{}?delimiter=/&limit={limit}&prefix={}",
                urlencode(ns),
                urlencode(prefix)
            ),
            None,
        )
        .await?;
    api.show(&page, |p| {
        let mut lines: Vec<String> = p["common_prefixes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(|f| format!("{:>12}  {:<20}  {f}", "-", "")))
            .collect();
        lines.extend(p["objects"].as_array().into_iter().flatten().map(|o| {
            format!(
                "{:>12}  {:<20}  {}",
                o["size"],
                o["last_modified"]
                    .as_str()
                    .unwrap_or_default()
                    .get(..19)
                    .unwrap_or_default(),
                o["key"].as_str().unwrap_or_default()
            )
        }));
        if p["next_cursor"].is_string() {
            lines.push(format!("(more: raise --limit above {limit})"));
        }
        lines.join("\n")
    });
    Ok(())
}
