//! RFC 9457 problem responses: every non-2xx answer is `application/problem+json` with a
//! stable machine `code`. Domain errors are mapped to HTTP here, in one place.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use shared_db::DbError;
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

/// The one answer to a refused page request, from every list: 400 `invalid_query` naming
/// `limit` or `cursor`.
impl From<shared_db::paging::PagingError> for ApiError {
    fn from(e: shared_db::paging::PagingError) -> Self {
        ApiError::bad_request("invalid_query", e.to_string()).for_field(e.field())
    }
}

/// API keys and scopes: 401 for a key that does not authenticate, 403 for a scope it
/// lacks, 422 for a key that cannot be made, 404 for an unknown id.
impl From<access::AccessError> for ApiError {
    fn from(e: access::AccessError) -> Self {
        use access::AccessError as A;
        let detail = e.to_string();
        match e {
            A::InvalidName => ApiError::unprocessable("invalid_name", detail),
            A::NoScopes | A::InvalidScope(_) => ApiError::unprocessable("invalid_scopes", detail),
            A::UnknownNamespace(_) => ApiError::unprocessable("invalid_scopes", detail).for_field("scopes"),
            A::InvalidExpiry => ApiError::unprocessable("invalid_expiry", detail),
            A::ExpiryNotAllowed(_) => ApiError::new(StatusCode::FORBIDDEN, "expiry_not_allowed", detail),
            A::InsufficientScope { scope, would_do } => ApiError::forbidden_scope(&scope, &would_do),
            A::NotFound => ApiError::not_found("api_key_not_found", detail),
            A::InvalidKey => ApiError::unauthorized("invalid_api_key", detail),
            A::Revoked => ApiError::unauthorized("api_key_revoked", detail),
            A::Expired => ApiError::unauthorized("api_key_expired", detail),
            A::Paging(p) => p.into(),
            A::Db(db) => db.into(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::unavailable("the database is unavailable; retry shortly")
        } else if e.is_lock_conflict() {
            // MySQL rolled the whole transaction back to break a deadlock: nothing was
            // stored, and running it again is safe.
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                BUSY,
                "a concurrent change won a lock race; nothing was stored: retry",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        } else {
            ApiError::internal(e)
        }
    }
}

impl From<license_core::LicenseError> for ApiError {
    fn from(e: license_core::LicenseError) -> Self {
        use license_core::LicenseError as L;
        use license_core::model::ValidationCode;
        match e {
            L::NotFound => ApiError::not_found("license_not_found", e.to_string()),
            L::MachineNotFound => ApiError::not_found("machine_not_found", e.to_string()),
            L::Invalid { field, ref message } => {
                ApiError::unprocessable("invalid_field", format!("{field}: {message}")).for_field(field)
            }
            L::Paging(p) => p.into(),
            L::InvalidTransition { .. } => ApiError::new(StatusCode::CONFLICT, "invalid_transition", e.to_string()),
            L::KeyInvalid(detail) => ApiError::new(StatusCode::UNAUTHORIZED, "license_key_invalid", detail),
            L::NotValid {
                code: code @ ValidationCode::TooManyMachines,
                detail,
            } => ApiError::unprocessable(code.as_str(), detail),
            L::NotValid { code, detail } => ApiError::new(StatusCode::FORBIDDEN, code.as_str(), detail),
            L::MachineExists => ApiError::new(StatusCode::CONFLICT, "machine_exists", e.to_string()),
            L::Signing(_) => ApiError::internal(e),
            L::Db(db) => db.into(),
        }
    }
}

impl From<slack_notify::NotifyError> for ApiError {
    fn from(e: slack_notify::NotifyError) -> Self {
        use slack_notify::NotifyError as N;
        match e {
            N::Invalid { field, ref message } => {
                ApiError::unprocessable("invalid_field", format!("{field}: {message}")).for_field(field)
            }
            N::NotFound => ApiError::not_found("slack_message_not_found", e.to_string()),
            N::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
            N::NotConfigured => ApiError::not_configured(e.to_string()),
            N::Paging(p) => p.into(),
            N::Db(db) => db.into(),
        }
    }
}

impl From<mailer::MailError> for ApiError {
    fn from(e: mailer::MailError) -> Self {
        use mailer::MailError as M;
        use mailer::sns::SnsError;
        use mailer::template::TemplateError as T;
        match e {
            M::Invalid { field, message } => {
                ApiError::unprocessable("invalid_field", format!("{field}: {message}")).for_field(field)
            }
            M::InvalidFields(_) => {
                let errors: Vec<FieldProblem> = e
                    .fields()
                    .into_iter()
                    .map(|(field, detail)| FieldProblem {
                        field: field.to_owned(),
                        detail: detail.to_owned(),
                    })
                    .collect();
                let detail = errors
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.detail))
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut err = ApiError::unprocessable("invalid_field", detail);
                err.field = errors.first().map(|f| f.field.as_str().into());
                err.errors = Some(errors.into());
                err
            }
            M::Template(ref t @ T::Missing { .. }) => {
                ApiError::unprocessable("template_variable_missing", t.to_string()).for_field("template.variables")
            }
            M::Template(ref t @ (T::Syntax { part, .. } | T::Render { part, .. })) => {
                ApiError::unprocessable("template_invalid", t.to_string()).for_field(part)
            }
            M::Template(ref t @ T::Busy) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, BUSY, t.to_string())
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            M::Template(ref t @ T::Limit { part, .. }) => {
                ApiError::unprocessable("template_limit_exceeded", t.to_string()).for_field(part)
            }
            M::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "message_too_large", e.to_string()),
            M::NotFound(what) => ApiError::not_found(
                match what {
                    "template" => "email_template_not_found",
                    "suppression" => "suppression_not_found",
                    _ => "email_not_found",
                },
                e.to_string(),
            ),
            M::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
            M::RawUnavailable(_) => ApiError::not_found("raw_not_available", e.to_string()),
            M::NotConfigured => ApiError::not_configured(e.to_string()),
            M::Sns(SnsError::Malformed(m)) => ApiError::bad_request("sns_malformed", m),
            M::Sns(SnsError::Forged(m)) => ApiError::new(StatusCode::FORBIDDEN, "sns_signature_invalid", m),
            M::Sns(SnsError::Unavailable(m)) => ApiError::unavailable(m),
            M::Paging(p) => p.into(),
            M::Db(db) => db.into(),
        }
    }
}

impl From<bridge::BridgeError> for ApiError {
    fn from(e: bridge::BridgeError) -> Self {
        use bridge::BridgeError as B;
        match e {
            B::Invalid { field, ref message } => {
                ApiError::unprocessable("invalid_field", format!("{field}: {message}")).for_field(field)
            }
            B::Paging(p) => p.into(),
            B::NotFound("rule") => ApiError::not_found("rule_not_found", e.to_string()),
            B::NotFound(_) => ApiError::not_found("webhook_not_found", e.to_string()),
            B::Db(db) => db.into(),
        }
    }
}

/// Storage's errors and refusals (`blob_store::BlobError`) as problems.
impl From<blob_store::BlobError> for ApiError {
    fn from(e: blob_store::BlobError) -> Self {
        use blob_store::BlobError as B;
        match e {
            B::NotFound => ApiError::not_found("object_not_found", "no object has that key"),
            B::AlreadyExists => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "object_exists",
                "If-None-Match: * and the object exists",
            ),
            B::PreconditionFailed { current } => {
                let detail = match &current {
                    Some(etag) => format!("the object's current ETag is {etag}"),
                    None => "no object has that key".to_owned(),
                };
                crate::http::data::precondition_failed(detail, current.as_deref())
            }
            B::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the namespace takes objects up to {limit} bytes"),
            ),
            B::ChecksumMismatch(which) => {
                ApiError::bad_request("checksum_mismatch", format!("the body does not match its {which}"))
            }
            B::RangeNotSatisfiable { size } => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the object has {size} bytes"),
            )
            .with_header(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).unwrap_or(HeaderValue::from_static("bytes */0")),
            ),
            B::KeyUnsupported(m) => ApiError::bad_request("invalid_key", m).for_field("key"),
            B::Interrupted(m) => ApiError::bad_request("upload_interrupted", m),
            B::Backend(m) => ApiError::backend_unavailable(
                "storage_unavailable",
                "the storage backend did not answer or failed; try again",
                m,
            ),
            B::NamespaceNotFound(_) => ApiError::not_found("namespace_not_found", e.to_string()),
            B::InvalidKey(_) => ApiError::bad_request("invalid_key", e.to_string()).for_field("key"),
            B::TypeNotAllowed { .. } => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content_type_not_allowed",
                e.to_string(),
            ),
            B::InvalidField { field, message } => ApiError::unprocessable("invalid_field", message).for_field(field),
            B::InvalidQuery(m) => ApiError::bad_request("invalid_query", m),
            B::Paging(p) => p.into(),
            B::SignatureInvalid(m) => ApiError::new(StatusCode::FORBIDDEN, "signature_invalid", m),
            B::OnField { field, source } => ApiError::from(*source).for_field(field),
            B::Database(db) => db.into(),
            B::Internal(m) => ApiError::internal(m),
        }
    }
}

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
    #![allow(clippy::unwrap_used)]
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
    fn an_unreachable_database_is_503_not_500() {
        let e: ApiError = DbError::Unavailable("connection refused".into()).into();
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), "service_unavailable");
    }

    /// Problem codes are lower snake_case, and so is every `type` URN built from them.
    fn is_code(code: &str) -> bool {
        code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    #[test]
    fn licence_holder_problems_use_snake_case_codes() {
        use license_core::LicenseError;
        use license_core::model::ValidationCode;
        for code in ValidationCode::ALL {
            let e: ApiError = LicenseError::NotValid {
                code,
                detail: "x".into(),
            }
            .into();
            assert!(is_code(e.code()), "{}", e.code());
            assert_eq!(
                e.problem().problem_type,
                format!("urn:event-bridge:problem:{}", e.code())
            );
            // The validation result says the same thing in the same spelling.
            assert_eq!(serde_json::to_value(code).unwrap(), e.code());
        }
        let e: ApiError = LicenseError::NotValid {
            code: ValidationCode::TooManyMachines,
            detail: "x".into(),
        }
        .into();
        assert_eq!(e.code(), "too_many_machines");
    }

    /// Every code the gateway can send, read from the source: the literal codes handed to
    /// `ApiError` constructors, `code: "..."` fields of domain errors, the code constants
    /// and the bare-status table.
    #[test]
    fn every_problem_code_in_the_source_is_snake_case() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let constructor = regex::Regex::new(
            r#"(?:ApiError|Self)::(?:new|bad_request|unauthorized|not_found|unprocessable|backend_unavailable)\(\s*(?:StatusCode::\w+,\s*)?"([^"]*)""#,
        )
        .unwrap();
        let field = regex::Regex::new(r#"\bcode: "([^"]*)""#).unwrap();
        let constant =
            regex::Regex::new(r#"/// The problem code [^\n]*\npub const [A-Z_]+: &str = "([^"]*)";"#).unwrap();
        let table = regex::Regex::new(r#"=> "([^"]*)",\s*$"#).unwrap();
        let mut files = Vec::new();
        let mut dirs = vec![root.join("bins/gateway/src")];
        for entry in std::fs::read_dir(root.join("crates")).unwrap() {
            dirs.push(entry.unwrap().path().join("src"));
        }
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut codes = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            // Codes in tests are what the tests expect, not what the gateway sends.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for re in [&constructor, &field] {
                codes.extend(re.captures_iter(text).map(|c| (file.clone(), c[1].to_owned())));
            }
        }
        let this = std::fs::read_to_string(root.join("bins/gateway/src/error.rs")).unwrap();
        let from_status = this.split("fn from_status").nth(1).unwrap().split("};").next().unwrap();
        codes.extend(
            from_status
                .lines()
                .filter_map(|l| table.captures(l))
                .map(|c| (root.join("bins/gateway/src/error.rs"), c[1].to_owned())),
        );
        codes.extend(
            constant
                .captures_iter(&this)
                .map(|c| (root.join("bins/gateway/src/error.rs"), c[1].to_owned())),
        );
        assert!(codes.len() > 80, "the scan found only {} codes", codes.len());
        for (file, code) in &codes {
            assert!(
                is_code(code),
                "{}: problem code `{code}` is not lower snake_case",
                file.display()
            );
        }
        for known in [
            "insufficient_scope",
            "malformed_json",
            "not_found",
            "busy",
            "machine_exists",
        ] {
            assert!(codes.iter().any(|(_, c)| c == known), "the scan missed `{known}`");
        }
    }
}

#[cfg(test)]
mod malformed_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
