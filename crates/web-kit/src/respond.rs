//! Answers several handlers give alike: a JSON body, at a resource's `Location`, marked
//! `Idempotent-Replayed: true` when it repeats the answer to an earlier request.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue, LOCATION};
use serde::Serialize;

/// `status` with `body` as JSON, `Location: location` when there is one, and
/// `Idempotent-Replayed: true` when `replayed`.
pub fn located(status: StatusCode, location: Option<String>, replayed: bool, body: impl Serialize) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    if let Some(location) = location {
        res.insert_header((LOCATION, location));
    }
    if replayed {
        res.insert_header((
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        ));
    }
    res.json(body)
}

/// 201 with `body` when `created`, else 200.
pub fn created_or_ok(created: bool, body: impl Serialize) -> HttpResponse {
    HttpResponse::build(if created { StatusCode::CREATED } else { StatusCode::OK }).json(body)
}
