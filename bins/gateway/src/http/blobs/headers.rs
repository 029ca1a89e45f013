//! The request headers of storage: preconditions (`If-Match`, `If-None-Match`,
//! `If-Range`) and the checksums an upload is held to.

use actix_web::HttpRequest;
use actix_web::http::header;
use blob_store::{Conditions, IfMatch, ObjectMeta};

use crate::error::ApiError;

pub(super) fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The entity tags of an `If-Match` / `If-None-Match` list (RFC 9110 §8.8.3: each
/// `"opaque"` or `W/"opaque"`, comma-separated), as sent; `None` when malformed.
fn entity_tags(value: &str) -> Option<Vec<String>> {
    let mut tags = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let weak = rest.starts_with("W/");
        let quoted = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"')?;
        let end = quoted.find('"')?;
        let opaque = &quoted[..end];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        tags.push(format!("{}\"{opaque}\"", if weak { "W/" } else { "" }));
        rest = quoted[end + 1..].trim_start();
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    (!tags.is_empty()).then_some(tags)
}

/// The request's `If-Match` (every field line of it, joined), or a 400 when malformed.
pub(super) fn if_match(req: &HttpRequest) -> Result<Option<IfMatch>, ApiError> {
    let mut lines = Vec::new();
    for v in req.headers().get_all(header::IF_MATCH) {
        lines.push(v.to_str().map_err(|_| bad_if_match())?);
    }
    if lines.is_empty() {
        return Ok(None);
    }
    let joined = lines.join(",");
    if joined.trim() == "*" {
        return Ok(Some(IfMatch::Any));
    }
    entity_tags(&joined)
        .map(|t| Some(IfMatch::Tags(t)))
        .ok_or_else(bad_if_match)
}

fn bad_if_match() -> ApiError {
    ApiError::bad_request(
        "invalid_precondition",
        "If-Match takes * or a list of ETags such as \"9e107d9d372bb6826bd81d3542a419d6\"",
    )
}

/// Whether `If-None-Match` holds a tag of the current object (weak comparison, as RFC
/// 9110 §13.1.2 wants for it) or `*`.
pub(super) fn none_match_hits(req: &HttpRequest, etag: &str) -> bool {
    req.headers().get_all(header::IF_NONE_MATCH).any(|v| {
        v.to_str().is_ok_and(|v| {
            v.trim() == "*"
                || entity_tags(v).is_some_and(|tags| tags.iter().any(|t| t.trim_start_matches("W/") == etag))
        })
    })
}

/// Whether a `Range` may be served under the request's `If-Range` (RFC 9110 §13.1.5):
/// true without one; with an ETag, only when it is the current one by strong comparison
/// (a weak tag never is). A date, or anything else, is false: the whole object is sent.
/// Last-Modified has one-second resolution, so two versions written within a second
/// share it and a date cannot tell them apart; every answer carries a strong ETag, which
/// RFC 9110 asks clients to send instead.
pub(super) fn if_range_holds(req: &HttpRequest, current: &ObjectMeta) -> bool {
    match req.headers().get(header::IF_RANGE) {
        None => true,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(entity_tags)
            .is_some_and(|tags| tags.len() == 1 && IfMatch::Tags(tags).matches(Some(&current.etag))),
    }
}

/// The checks an upload's headers ask for: `Content-MD5`, `x-checksum-sha256`,
/// `If-None-Match: *` and `If-Match`; a 400 when one is malformed.
pub(super) fn conditions(req: &HttpRequest) -> Result<Conditions, ApiError> {
    let expected_md5 = match header_str(req, "content-md5") {
        Some(v) => Some(
            data_encoding::BASE64
                .decode(v.trim().as_bytes())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_checksum", "Content-MD5 must be the base64 of 16 bytes")
                })?,
        ),
        None => None,
    };
    let expected_sha256 = match header_str(req, "x-checksum-sha256") {
        Some(v) => Some(
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(v.trim().as_bytes())
                .or_else(|_| data_encoding::BASE64.decode(v.trim().as_bytes()))
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_checksum",
                        "x-checksum-sha256 must be hex or base64 of 32 bytes",
                    )
                })?,
        ),
        None => None,
    };
    let if_none_match = match header_str(req, "if-none-match") {
        Some("*") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_precondition",
                "only If-None-Match: * is supported on PUT",
            ));
        }
        None => false,
    };
    Ok(Conditions {
        expected_md5,
        expected_sha256,
        if_none_match,
        if_match: if_match(req)?,
    })
}
