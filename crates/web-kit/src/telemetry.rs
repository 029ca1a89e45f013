//! Logging: `tracing` to stderr (so stdout stays clean for CLI output), coloured by level
//! in a terminal or JSON with `LOG_FORMAT=json`; a request id per request, accepted from
//! and returned in `X-Request-Id`.

use std::io::IsTerminal;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured by level in a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// The request id header.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if called while handling one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Installs the global subscriber. `RUST_LOG` overrides `level` when set.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // actix-web-prom warns on every request to a route with a tail parameter
    // (`/blobs/{namespace}/{key:.*}`) that it labels it by the route pattern: noise.
    let filter = match "actix_web_prom=error".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests build several apps in one process) is harmless.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}

/// An incoming id is kept if it is short, printable ASCII; otherwise a new one is made.
fn usable_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

/// Middleware: assigns the request id, logs one line per request and echoes the id.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(usable_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let client = req
        .app_data::<actix_web::web::Data<crate::net::TrustedProxies>>()
        .and_then(|t| crate::net::client_ip(req.request(), &t.0))
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let span =
        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path(), client = %client);
    let quiet = matches!(req.path(), "/healthz" | "/readyz" | "/metrics");
    let started = Instant::now();
    let result = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await;
    let mut response = result?;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let route = response.request().match_pattern().unwrap_or_default();
    span.in_scope(|| {
        if quiet && status < 400 {
            tracing::debug!(status, latency_ms, route, "served");
        } else {
            tracing::info!(status, latency_ms, route, "served");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}
