//! RFC 9457 problem responses: every non-2xx answer is `application/problem+json` with a
//! stable machine `code`. This is the domain-agnostic core; the gateway maps domain
//! errors to it in one place (its `error/domain.rs`).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::telemetry::current_request_id;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:event-bridge:problem:{code}`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code.
    pub code: String,
    /// The request field at fault, for validation problems (the first, when several are).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field at fault, when a request was checked as a whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// The request id (also in the `X-Request-Id` header); quote it when reporting a 5xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One field at fault in a request.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct FieldProblem {
    /// The field (`to[1]`, `[2].subject` in a batch).
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

/// An error answered as a problem response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The cause of a 5xx, logged and never sent.
    cause: Option<Box<str>>,
    field: Option<Box<str>>,
    /// Boxed (as are `cause` and `field`): most errors have none, and `ApiError` travels in every
    /// `Result`.
    errors: Option<Box<[FieldProblem]>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// An error with `status`, a stable `code` and a human `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: Some(detail.into()),
            headers: Vec::new(),
            cause: None,
            field: None,
            errors: None,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401: no usable credentials.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"event-bridge\""),
        )
    }

    /// 403: authenticated, but the key lacks `scope` (the narrowest that would allow the
    /// call); `would_do` lists every scope that would, narrowest first.
    pub fn forbidden_scope(scope: &str, would_do: &[String]) -> Self {
        let quoted: Vec<String> = would_do.iter().map(|s| format!("`{s}`")).collect();
        let list = match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => format!("`{scope}`"),
        };
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this API key lacks the `{scope}` scope; a key with {list} may make this call"),
        )
    }

    /// 404 for a missing resource.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 422: well-formed but unacceptable input.
    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 503: a dependency is down; retry later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    /// 503 `not_configured`: the channel a request would send on has no transport on
    /// this gateway; `detail` says what to set. Nothing was stored, and retrying does not
    /// help until the configuration changes (so no `Retry-After`).
    pub fn not_configured(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, NOT_CONFIGURED, detail)
    }

    /// True for a transaction that lost a lock race (see [`BUSY`]): safe to run again.
    pub fn is_busy(&self) -> bool {
        self.code == BUSY
    }

    /// 503 for a failing backend (storage, say): its cause is logged, never sent.
    pub fn backend_unavailable(code: &'static str, detail: &'static str, cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string().into()),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
        }
    }

    /// 500: logged with its cause; the client sees only the request id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            detail: Some("an unexpected error occurred; quote the request id when reporting it".into()),
            headers: Vec::new(),
            cause: Some(cause.to_string().into()),
            field: None,
            errors: None,
        }
    }

    /// A problem for a bare status (used for errors raised outside our handlers).
    pub fn from_status(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::URI_TOO_LONG => "uri_too_long",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
            StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
            s if s.is_server_error() => "internal_error",
            _ => "http_error",
        };
        Self {
            status,
            code,
            detail: None,
            headers: Vec::new(),
            cause: None,
            field: None,
            errors: None,
        }
    }

    /// 429 with `Retry-After` (whole seconds, at least 1).
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let value = HeaderValue::from_str(&secs.max(1).to_string()).unwrap_or(HeaderValue::from_static("1"));
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry after the Retry-After delay",
        )
        .with_header(header::RETRY_AFTER, value)
    }

    /// Every field at fault (the first becomes `field`), for a request checked as a whole.
    pub fn with_errors(mut self, errors: Vec<FieldProblem>) -> Self {
        self.field = errors.first().map(|f| f.field.as_str().into());
        self.errors = Some(errors.into());
        self
    }

    /// Names the request field at fault.
    pub fn for_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into().into());
        self
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("urn:event-bridge:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            field: self.field.as_deref().map(str::to_owned),
            errors: self.errors.as_deref().map(<[FieldProblem]>::to_vec).unwrap_or_default(),
            request_id: current_request_id(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        if self.status.is_server_error() {
            tracing::error!(
                request_id = problem.request_id.as_deref().unwrap_or("-"),
                code = self.code,
                cause = self.cause.as_deref().or(self.detail.as_deref()).unwrap_or("-"),
                "request failed"
            );
        }
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.json(problem)
    }
}

/// The answer to a request actix-http cannot parse (a URI with `"` or a space, a bad
/// header line, a head over the size limit), which never reaches the middlewares: a
/// problem document with a request id of its own, logged at WARN (the client's mistake).
/// Installed once at start with [`actix_http::h1::set_malformed_request_responder`].
pub fn malformed_request(
    err: &actix_http::error::ParseError,
    status: StatusCode,
) -> (actix_http::Response<()>, actix_web::web::Bytes) {
    let request_id = uuid::Uuid::now_v7().to_string();
    let (code, detail) = if status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
        (
            "headers_too_large",
            "the request line and headers are over the size limit".to_owned(),
        )
    } else {
        (
            "malformed_request",
            format!(
                "the request line or a header could not be parsed ({err}); percent-encode \
                 characters such as `\"`, spaces and non-ASCII in the URL"
            ),
        )
    };
    tracing::warn!(%request_id, %status, error = %err, "malformed request refused before routing");
    let problem = Problem {
        problem_type: format!("urn:event-bridge:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: Some(detail),
        code: code.to_owned(),
        field: None,
        errors: Vec::new(),
        request_id: Some(request_id.clone()),
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut res = actix_http::Response::with_body(status, ());
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), id);
    }
    (res, body.into())
}

/// The problem code of a transaction rolled back by the database to break a deadlock.
pub const BUSY: &str = "busy";

/// The problem code of a send on a channel (email, Slack) with no transport configured.
pub const NOT_CONFIGURED: &str = "not_configured";

/// The JSON body extractor's failures as problems: 413 too large, 415 wrong content
/// type, 400 malformed JSON, 422 JSON of the wrong shape.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as J;
    match err {
        J::OverflowKnownLength { length, limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is {length} bytes; the limit is {limit}"),
        ),
        J::Overflow { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds the limit of {limit} bytes"),
        ),
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        J::Deserialize(e) if e.is_data() => ApiError::unprocessable("invalid_body", e.to_string()),
        J::Deserialize(e) => ApiError::bad_request("malformed_json", e.to_string()),
        J::Serialize(e) => ApiError::internal(e),
        J::Payload(actix_web::error::PayloadError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", e.to_string())
        }
        J::Payload(e) => ApiError::bad_request("bad_payload", e.to_string()),
        other => ApiError::bad_request("bad_payload", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_problem_shape_is_stable() {
        let e = ApiError::bad_request("malformed_json", "expected value at line 1 column 1");
        let json = serde_json::to_value(e.problem()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "urn:event-bridge:problem:malformed_json",
                "title": "Bad Request",
                "status": 400,
                "detail": "expected value at line 1 column 1",
                "code": "malformed_json",
            })
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal("connection string mysql://root:hunter2@db");
        let json = serde_json::to_string(&e.problem()).unwrap();
        assert!(!json.contains("hunter2"));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn unparsable_requests_get_problem_documents_with_a_request_id() {
        for (err, status, code) in [
            (
                actix_http::error::ParseError::Uri(
                    "/a b"
                        .parse::<actix_web::http::Uri>()
                        .expect_err("a space is not a URI character"),
                ),
                StatusCode::BAD_REQUEST,
                "malformed_request",
            ),
            (
                actix_http::error::ParseError::TooLarge,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
        ] {
            let (res, body) = malformed_request(&err, status);
            assert_eq!(res.status(), status);
            assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), PROBLEM_JSON);
            let problem: Problem = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem.code, code);
            assert_eq!(problem.status, status.as_u16());
            let id = problem.request_id.unwrap();
            assert_eq!(res.headers().get("x-request-id").unwrap().to_str().unwrap(), id);
        }
    }
}
