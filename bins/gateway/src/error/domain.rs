//! Every domain error as a problem: the only place where one becomes an HTTP status and
//! a problem `code`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use shared_db::DbError;

use super::{ApiError, BUSY, FieldProblem};

/// 422 `invalid_field`: `field` is named, and the detail is `<field>: <message>`.
fn invalid_field(field: impl std::fmt::Display + Into<String>, message: &str) -> ApiError {
    ApiError::unprocessable("invalid_field", format!("{field}: {message}")).for_field(field)
}

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
            L::PolicyNotFound => ApiError::not_found("policy_not_found", e.to_string()),
            L::PolicyInUse(_) => ApiError::new(StatusCode::CONFLICT, "policy_in_use", e.to_string()),
            L::Invalid { field, ref message } => invalid_field(field, message),
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
            N::Invalid { field, ref message } => invalid_field(field, message),
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
            M::Invalid { field, ref message } => invalid_field(field, message),
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
                ApiError::unprocessable("invalid_field", detail).with_errors(errors)
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
            B::Invalid { field, ref message } => invalid_field(field, message),
            B::Paging(p) => p.into(),
            B::NotFound("rule") => ApiError::not_found("rule_not_found", e.to_string()),
            B::NotFound(_) => ApiError::not_found("webhook_not_found", e.to_string()),
            B::Db(db) => db.into(),
        }
    }
}

/// 412 `precondition_failed`, with the current version's `ETag` when there is one
/// (documents and storage).
fn precondition_failed(detail: String, current: Option<&str>) -> ApiError {
    let err = ApiError::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", detail);
    match current.and_then(|v| HeaderValue::from_str(v).ok()) {
        Some(v) => err.with_header(header::ETAG, v),
        None => err,
    }
}

/// Shared documents: 400 for a bad name, id, precondition or body, 404, 412 with the
/// current `ETag`, 413, 422 for a schema, 503 `busy` when the document kept changing.
impl From<documents::DocumentError> for ApiError {
    fn from(e: documents::DocumentError) -> Self {
        use documents::DocumentError as D;
        match e {
            D::InvalidCollection => ApiError::bad_request("invalid_collection", e.to_string()),
            D::InvalidId => ApiError::bad_request("invalid_id", e.to_string()),
            D::InvalidPrecondition(m) => ApiError::bad_request("invalid_precondition", m),
            D::MalformedJson(m) => ApiError::bad_request("malformed_json", m),
            D::NotFound => ApiError::not_found("document_not_found", "no document has that id"),
            D::PreconditionFailed { current } => {
                let detail = match current {
                    Some(v) => format!("the document is at version {v}"),
                    None => "the document does not exist".to_owned(),
                };
                precondition_failed(detail, current.map(documents::etag).as_deref())
            }
            D::BodyTooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", e.to_string()),
            D::TooLarge { size, limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the document would be {size} bytes; documents are at most {limit} bytes"),
            ),
            D::SchemaViolation(paths) => ApiError::unprocessable("schema_violation", paths.join("; ")),
            D::InvalidSchema(m) => ApiError::unprocessable("invalid_schema", m),
            D::Contended => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                BUSY,
                "the document kept changing while it was validated; nothing was stored: retry",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            D::Paging(p) => p.into(),
            D::Db(db) => db.into(),
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
                precondition_failed(detail, current.as_deref())
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
            B::UploadNotFound => ApiError::not_found("upload_not_found", e.to_string()),
            B::UploadRefused { code, message } => ApiError::unprocessable(code, message).for_field("parts"),
            B::UploadConflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
            B::Database(db) => db.into(),
            B::Internal(m) => ApiError::internal(m),
        }
    }
}
