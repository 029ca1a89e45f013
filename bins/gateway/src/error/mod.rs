//! The gateway's errors: web-kit's RFC 9457 problem responses ([`web_kit::problem`]), plus
//! the one place where a domain error becomes an HTTP status and a problem `code`
//! ([`domain`]'s `From` impls). The gateway's [`ApiError`] wraps web-kit's so that it can
//! take those conversions (a crate may only implement `From` for a type of its own).

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

pub use web_kit::problem::{BUSY, FieldProblem, NOT_CONFIGURED, PROBLEM_JSON, Problem, json_error, malformed_request};

/// What a handler answers: a response, or a problem.
pub type Reply = Result<HttpResponse, ApiError>;

/// An error answered as a problem response (see [`web_kit::ApiError`], whose
/// constructors it repeats).
#[derive(Debug)]
pub struct ApiError(web_kit::ApiError);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<web_kit::ApiError> for ApiError {
    fn from(e: web_kit::ApiError) -> Self {
        Self(e)
    }
}

/// Forwards web-kit's constructors (`ApiError::bad_request(..)`) and builders.
macro_rules! forward {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*);)*) => {
        $($(#[$doc])* pub fn $name($($arg: $ty),*) -> Self {
            Self(web_kit::ApiError::$name($($arg),*))
        })*
    };
}

impl ApiError {
    forward! {
        /// An error with `status`, a stable `code` and a human `detail`.
        fn new(status: StatusCode, code: &'static str, detail: impl Into<String>);
        /// 400 with `code`.
        fn bad_request(code: &'static str, detail: impl Into<String>);
        /// 401: no usable credentials.
        fn unauthorized(code: &'static str, detail: impl Into<String>);
        /// 403: the key lacks `scope`; `would_do` lists every scope that would do.
        fn forbidden_scope(scope: &str, would_do: &[String]);
        /// 404 for a missing resource.
        fn not_found(code: &'static str, detail: impl Into<String>);
        /// 422: well-formed but unacceptable input.
        fn unprocessable(code: &'static str, detail: impl Into<String>);
        /// 503: a dependency is down; retry later.
        fn unavailable(detail: impl Into<String>);
        /// 503 `not_configured`: the channel has no transport on this gateway.
        fn not_configured(detail: impl Into<String>);
        /// 503 for a failing backend: its cause is logged, never sent.
        fn backend_unavailable(code: &'static str, detail: &'static str, cause: impl std::fmt::Display);
        /// 500: logged with its cause; the client sees only the request id.
        fn internal(cause: impl std::fmt::Display);
        /// A problem for a bare status.
        fn from_status(status: StatusCode);
        /// 429 with `Retry-After`.
        fn rate_limited(retry_after: std::time::Duration);
    }

    /// Adds a response header.
    pub fn with_header(self, name: HeaderName, value: HeaderValue) -> Self {
        Self(self.0.with_header(name, value))
    }

    /// Names the request field at fault.
    pub fn for_field(self, field: impl Into<String>) -> Self {
        Self(self.0.for_field(field))
    }

    /// Every field at fault (the first becomes `field`).
    pub fn with_errors(self, errors: Vec<FieldProblem>) -> Self {
        Self(self.0.with_errors(errors))
    }

    /// True for a transaction that lost a lock race (see [`BUSY`]): safe to run again.
    pub fn is_busy(&self) -> bool {
        self.0.is_busy()
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        self.0.problem()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.error_response()
    }
}

mod domain;
#[cfg(test)]
mod tests;
