//! Conditional requests and body checksums, read from a request's headers: the entity-tag
//! lists of `If-Match` / `If-None-Match` (RFC 9110 §8.8.3, §13.1), `If-Range` (§13.1.5),
//! `Content-MD5` (RFC 1864) and a SHA-256 header. Malformed values are 400s.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::ApiError;

/// The value of the header `name` when it is visible ASCII.
pub fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What an `If-Match` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityTags {
    /// `*`: any current version.
    Any,
    /// These entity tags, as sent (quoted; a weak one keeps its `W/`).
    Tags(Vec<String>),
}

/// The entity tags of an `If-Match` / `If-None-Match` list (each `"opaque"` or
/// `W/"opaque"`, comma-separated), as sent; `None` when malformed.
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
pub fn if_match(req: &HttpRequest) -> Result<Option<EntityTags>, ApiError> {
    let mut lines = Vec::new();
    for v in req.headers().get_all(header::IF_MATCH) {
        lines.push(v.to_str().map_err(|_| bad_if_match())?);
    }
    if lines.is_empty() {
        return Ok(None);
    }
    let joined = lines.join(",");
    if joined.trim() == "*" {
        return Ok(Some(EntityTags::Any));
    }
    entity_tags(&joined)
        .map(|t| Some(EntityTags::Tags(t)))
        .ok_or_else(bad_if_match)
}

fn bad_if_match() -> ApiError {
    ApiError::bad_request(
        "invalid_precondition",
        "If-Match takes * or a list of ETags such as \"9e107d9d372bb6826bd81d3542a419d6\"",
    )
}

/// Whether `If-None-Match` holds `etag` (weak comparison, as RFC 9110 §13.1.2 wants for
/// it) or `*`.
pub fn none_match_hits(req: &HttpRequest, etag: &str) -> bool {
    req.headers().get_all(header::IF_NONE_MATCH).any(|v| {
        v.to_str().is_ok_and(|v| {
            v.trim() == "*"
                || entity_tags(v).is_some_and(|tags| tags.iter().any(|t| t.trim_start_matches("W/") == etag))
        })
    })
}

/// A write's `If-None-Match`: true for `*` (create only), false when absent; any other
/// value is a 400.
pub fn if_none_match_any(req: &HttpRequest) -> Result<bool, ApiError> {
    match header_str(req, "if-none-match") {
        Some("*") => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "invalid_precondition",
            "only If-None-Match: * is supported on PUT",
        )),
        None => Ok(false),
    }
}

/// Whether a `Range` may be served under the request's `If-Range`: true without one;
/// with an ETag, only when it is `current_etag` by strong comparison (a weak tag never
/// is). A date, or anything else, is false: the whole representation is sent.
/// Last-Modified has one-second resolution, so two versions written within a second
/// share it and a date cannot tell them apart; a strong ETag, which RFC 9110 asks
/// clients to send instead, can.
pub fn if_range_holds(req: &HttpRequest, current_etag: &str) -> bool {
    match req.headers().get(header::IF_RANGE) {
        None => true,
        Some(v) => v.to_str().ok().and_then(entity_tags).is_some_and(|tags| {
            !current_etag.starts_with("W/") && matches!(tags.as_slice(), [tag] if tag == current_etag)
        }),
    }
}

/// The 16 bytes of a `Content-MD5` (base64), or a 400 when malformed.
pub fn content_md5(req: &HttpRequest) -> Result<Option<[u8; 16]>, ApiError> {
    header_str(req, "content-md5")
        .map(|v| {
            data_encoding::BASE64
                .decode(v.trim().as_bytes())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| ApiError::bad_request("invalid_checksum", "Content-MD5 must be the base64 of 16 bytes"))
        })
        .transpose()
}

/// The 32 bytes of the SHA-256 in header `name` (hex or base64), or a 400 when malformed.
pub fn sha256(req: &HttpRequest, name: &str) -> Result<Option<[u8; 32]>, ApiError> {
    header_str(req, name)
        .map(|v| {
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(v.trim().as_bytes())
                .or_else(|_| data_encoding::BASE64.decode(v.trim().as_bytes()))
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_checksum", format!("{name} must be hex or base64 of 32 bytes"))
                })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use actix_web::test::TestRequest;

    use super::{EntityTags, if_match, if_range_holds, none_match_hits};

    #[test]
    fn entity_tag_lists_parse_as_rfc_9110_writes_them() {
        let req = TestRequest::default()
            .insert_header(("If-Match", "\"a\", W/\"b\""))
            .to_http_request();
        assert_eq!(
            if_match(&req).unwrap(),
            Some(EntityTags::Tags(vec!["\"a\"".into(), "W/\"b\"".into()]))
        );
        let star = TestRequest::default()
            .insert_header(("If-Match", "*"))
            .to_http_request();
        assert_eq!(if_match(&star).unwrap(), Some(EntityTags::Any));
        for bad in ["a", "\"a\" \"b\"", "\"a", "\"a b\""] {
            let req = TestRequest::default()
                .insert_header(("If-Match", bad))
                .to_http_request();
            assert!(if_match(&req).is_err(), "{bad}");
        }
    }

    #[test]
    fn none_match_is_weak_and_if_range_strong() {
        let req = TestRequest::default()
            .insert_header(("If-None-Match", "W/\"a\""))
            .insert_header(("If-Range", "W/\"a\""))
            .to_http_request();
        assert!(none_match_hits(&req, "\"a\""));
        assert!(!if_range_holds(&req, "\"a\""));
        let strong = TestRequest::default()
            .insert_header(("If-Range", "\"a\""))
            .to_http_request();
        assert!(if_range_holds(&strong, "\"a\""));
        assert!(!if_range_holds(&strong, "\"b\""));
        assert!(if_range_holds(&TestRequest::default().to_http_request(), "\"b\""));
    }
}
