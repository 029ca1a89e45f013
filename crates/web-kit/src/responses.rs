//! Answers that many routes document alike, for the `responses(...)` of
//! `#[utoipa::path]` (each renders as a `(status = ..., description = ..., body =
//! Problem, content_type = "application/problem+json")` tuple would).

use utoipa::IntoResponses;

use crate::problem::Problem;

/// 401: the request has no valid API key.
#[derive(Debug, IntoResponses)]
#[response(
    status = 401,
    description = "No valid API key",
    content_type = "application/problem+json"
)]
pub struct Unauthorized(pub Problem);
