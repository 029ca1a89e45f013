//! Cross-origin requests from browsers (CORS).
//!
//! Pages of the origins in `CORS_ALLOWED_ORIGINS` (none by default) may call the whole API:
//! their preflights are answered and their responses carry `Access-Control-Allow-Origin`.
//! URLs the gateway signed for the local storage backend are open to pages of any origin,
//! for the method they were signed for: the signature in the URL is the credential (no
//! cookies are involved), which lets a browser `PUT` a file to a URL its platform's server
//! asked for. That applies only to requests whose query carries the signature (and to the
//! preflights for them, which carry the same query); an API-key request to the same path
//! gets CORS headers only for a listed origin. A response without
//! `Access-Control-Allow-Origin` carries no other `Access-Control-*` header either, and a
//! refused preflight answers 403 `cors_not_allowed`.

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{RequestHead, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};

use crate::problem::ApiError;

/// The origins allowed to call the API from a browser (`CORS_ALLOWED_ORIGINS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// These exact origins (`https://app.example.com`), normalised; none by default.
    #[default]
    None,
    /// These exact origins, serialised as browsers send them (`https://app.example.com`).
    Listed(Vec<String>),
    /// Any origin (`*`). Requests are never credentialed (API keys travel in
    /// `Authorization`, which a page must hold to send), so the origin is echoed and
    /// `Access-Control-Allow-Credentials` is never sent.
    Any,
}

/// How long a browser may cache a preflight's answer (seconds).
const PREFLIGHT_MAX_AGE: usize = 3600;

/// Methods the API answers.
const METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Request headers a page may send.
const REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-md5",
    "x-checksum-sha256",
    "if-match",
    "if-none-match",
    "if-range",
    "range",
    "idempotency-key",
    "x-request-id",
    "accept",
];

/// Response headers a page may read (beyond the CORS-safelisted ones).
const EXPOSED_HEADERS: &[&str] = &[
    "etag",
    "location",
    "x-request-id",
    "retry-after",
    "content-range",
    "content-length",
    "content-disposition",
    "accept-ranges",
    "last-modified",
    "allow",
    "idempotent-replayed",
];

/// Parses `CORS_ALLOWED_ORIGINS`: comma-separated origins (`scheme://host[:port]`, no
/// path, not even `/`), or `*` alone for any origin.
pub fn parse_origins(value: &str) -> Result<AllowedOrigins, String> {
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries == ["*"] {
        return Ok(AllowedOrigins::Any);
    }
    let mut origins = Vec::new();
    for entry in entries {
        let origin = parse_origin(entry)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(AllowedOrigins::Listed(origins))
}

/// One origin, as browsers send it in `Origin` (lower-case, default port omitted).
fn parse_origin(entry: &str) -> Result<String, String> {
    if entry.is_empty() {
        return Err("an empty entry; list origins such as https://app.example.com, separated by commas".into());
    }
    if entry.contains('*') {
        return Err(format!(
            "`{entry}`: `*` (any origin) stands alone; otherwise list each origin in full, without wildcards"
        ));
    }
    let url = url::Url::parse(entry)
        .map_err(|e| format!("`{entry}` is not an origin such as https://app.example.com: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{entry}`: an origin starts with http:// or https://"));
    }
    let authority = entry.split_once("://").map_or("", |(_, rest)| rest);
    if url.host().is_none() || authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "`{entry}`: an origin is scheme://host[:port], without a path (not even a trailing /), query, fragment or user"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// The method a URL was signed for, from its path and query (`None`: not a signed URL);
/// the service that signs URLs knows their shape.
pub type SignedMethod = fn(path: &str, query: &str) -> Option<String>;

/// The method the request (or, for a preflight, the request it announces) uses on a URL
/// the gateway signed, when it is the one the URL was signed for (`HEAD` goes with `GET`).
fn signed_storage_request(head: &RequestHead, signed_method: SignedMethod) -> bool {
    let method = if head.method == Method::OPTIONS {
        match head
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
        {
            Some(m) => m,
            None => return false,
        }
    } else {
        head.method.clone()
    };
    signed_method(head.uri.path(), head.uri.query().unwrap_or(""))
        .is_some_and(|signed| signed == method.as_str() || (signed == "GET" && method == Method::HEAD))
}

/// The CORS middleware for `origins` (see the module's documentation); `signed_method`
/// recognises the signed storage URLs open to any origin.
pub fn middleware(origins: &AllowedOrigins, signed_method: SignedMethod) -> Cors {
    let (any, listed) = match origins {
        AllowedOrigins::None => (false, Vec::new()),
        AllowedOrigins::Listed(list) => (false, list.clone()),
        AllowedOrigins::Any => (true, Vec::new()),
    };
    Cors::default()
        .allowed_origin_fn(move |origin, head| {
            any || listed.iter().any(|o| o.as_bytes() == origin.as_bytes())
                || signed_storage_request(head, signed_method)
        })
        .allowed_methods(METHODS)
        .allowed_headers(REQUEST_HEADERS.iter().map(|h| HeaderName::from_static(h)))
        .expose_headers(EXPOSED_HEADERS.iter().map(|h| HeaderName::from_static(h)))
        .max_age(PREFLIGHT_MAX_AGE)
        // Another origin's request is served as if CORS did not exist (a browser then
        // withholds the answer from the page); only its preflight is refused.
        .block_on_origin_mismatch(false)
}

/// Middleware around [`middleware`]: a response that does not allow the request's origin
/// loses every `Access-Control-*` header the CORS layer added, and a refused preflight
/// becomes a problem document (403 `cors_not_allowed`).
pub async fn only_when_allowed<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = next.call(req).await?;
    if res.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        return Ok(res.map_into_left_body());
    }
    let cors_headers: Vec<HeaderName> = res
        .headers()
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors_headers {
        res.headers_mut().remove(name);
    }
    if !(preflight && res.status().is_client_error()) {
        return Ok(res.map_into_left_body());
    }
    let why = res
        .response()
        .error()
        .map_or_else(|| "the request is not allowed".to_owned(), ToString::to_string);
    let problem = ApiError::new(
        StatusCode::FORBIDDEN,
        "cors_not_allowed",
        format!(
            "CORS preflight refused: {why}. Origins that may call the API are set in CORS_ALLOWED_ORIGINS; a storage URL the gateway signed is open to any origin for the method it was signed for"
        ),
    );
    let mut answer = problem.error_response();
    if let Some(vary) = res.headers().get(header::VARY) {
        answer.headers_mut().insert(header::VARY, vary.clone());
    }
    let (req, _) = res.into_parts();
    Ok(ServiceResponse::new(req, answer).map_into_right_body())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn origins_are_exact_and_normalised() {
        assert_eq!(parse_origins("*"), Ok(AllowedOrigins::Any));
        assert_eq!(
            parse_origins("https://App.Example.com, http://localhost:3000,https://app.example.com:443").unwrap(),
            AllowedOrigins::Listed(vec!["https://app.example.com".into(), "http://localhost:3000".into()])
        );
        assert_eq!(
            parse_origins("https://보고서.example").unwrap(),
            AllowedOrigins::Listed(vec!["https://xn--299ax81ai7c.example".into()])
        );
        for bad in [
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?x",
            "https://user@app.example.com",
            "app.example.com",
            "ftp://app.example.com",
            "null",
            "*, https://app.example.com",
            "https://*.example.com",
            "https://a.example,,https://b.example",
            "https://a.example,",
            "file:///etc",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }
}
