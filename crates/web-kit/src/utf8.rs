//! Actix decodes a request's path and query lossily (`%ff` becomes U+FFFD, so `%ff%fe` and
//! `%fe%ff` would read the same): these checks refuse bytes that are not UTF-8 once
//! percent-decoded instead.

use actix_web::HttpRequest;

use crate::ApiError;

/// Whether the request's path is UTF-8 once percent-decoded.
pub fn path_is_utf8(req: &HttpRequest) -> bool {
    percent_encoding::percent_decode_str(req.uri().path())
        .decode_utf8()
        .is_ok()
}

/// Refuses (400 `invalid_query`) a query string holding a parameter that is not UTF-8
/// once percent-decoded.
pub fn utf8_query(req: &HttpRequest) -> Result<(), ApiError> {
    if percent_encoding::percent_decode_str(req.query_string())
        .decode_utf8()
        .is_err()
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "a query parameter is not UTF-8 once percent-decoded (rule: not_utf8)",
        ));
    }
    Ok(())
}
