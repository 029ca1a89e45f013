//! The web console at `/console/`: static files (vanilla ES modules, no build step) kept
//! in `bins/gateway/console/` and embedded in the binary. It is a plain client of the
//! public API: it serves no data of its own, and every file it serves is public.
//!
//! Each answer (404s included) carries a strict Content-Security-Policy (no inline
//! script, no framing), `nosniff` and `no-referrer`. Files are looked up by exact name in
//! a fixed table, so no path can reach anything else; `ETag` (a SHA-256 of the file)
//! with `Cache-Control: no-cache` lets a browser revalidate instead of downloading again.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// The policy on every console answer. Scripts, style sheets and connections only from
/// this origin; the email preview is an `<iframe sandbox srcdoc>` (no scripts in it, and
/// it inherits this policy, so remote images and trackers do not load), whose mail HTML
/// needs its inline `style` attributes, hence `'unsafe-inline'` for styles only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $ty:literal),* $(,)?) => {
        &[$(Asset {
            name: $name,
            content_type: $ty,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $name)),
        }),*]
    };
}

/// Every file the console has; anything else is a 404.
static ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "ui.js" => "text/javascript; charset=utf-8",
    "mime.js" => "text/javascript; charset=utf-8",
    "pages/overview.js" => "text/javascript; charset=utf-8",
    "pages/licenses.js" => "text/javascript; charset=utf-8",
    "pages/emails.js" => "text/javascript; charset=utf-8",
    "pages/slack.js" => "text/javascript; charset=utf-8",
    "pages/storage.js" => "text/javascript; charset=utf-8",
    "pages/events.js" => "text/javascript; charset=utf-8",
    "pages/keys.js" => "text/javascript; charset=utf-8",
    "pages/bridge.js" => "text/javascript; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
};

/// Each asset's strong ETag: the first 16 bytes of its SHA-256, in hex.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = ring::digest::digest(&ring::digest::SHA256, a.body);
            format!("\"{}\"", data_encoding::HEXLOWER.encode(&digest.as_ref()[..16]))
        })
        .collect()
});

/// The console's routes (outside the OpenAPI document: they serve files, not data).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(redirect))
        .route("/console", web::head().to(redirect))
        .route("/console/{file:.*}", web::get().to(serve))
        .route("/console/{file:.*}", web::head().to(serve));
}

/// `/console` without the slash: the page's relative module paths need it.
async fn redirect() -> HttpResponse {
    let mut res = HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish();
    secure(&mut res);
    res
}

/// One file, by its exact name (`""` is `index.html`).
async fn serve(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    let name = match file.as_str() {
        "" => "index.html",
        other => other,
    };
    let mut res = match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => answer(&req, i),
        None => actix_web::ResponseError::error_response(&ApiError::not_found(
            "console_file_not_found",
            "the console has no such file",
        )),
    };
    secure(&mut res);
    res
}

fn answer(req: &HttpRequest, i: usize) -> HttpResponse {
    let (asset, etag) = (&ASSETS[i], &ETAGS[i]);
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if matches {
        HttpResponse::build(StatusCode::NOT_MODIFIED)
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if matches {
        return res.finish();
    }
    // actix-http answers HEAD with this length and no body.
    res.insert_header((header::CONTENT_TYPE, asset.content_type))
        .body(asset.body)
}

/// The headers every console answer carries.
fn secure(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_unique_name_and_etag() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
            assert!(ASSETS[..i].iter().all(|b| b.name != a.name), "{} twice", a.name);
            assert_eq!(ETAGS[i].len(), 34);
        }
        assert!(CSP.contains("frame-ancestors 'none'") && !CSP.contains("script-src 'self' 'unsafe"));
    }
}
