//! Event Bridge patch: the answer to a request that cannot be parsed (a bad request line,
//! header or URI, or a head that is too large) can be chosen by the application, which
//! never sees such a request otherwise. Upstream sends an empty 400 (or 431) and logs the
//! parse error at ERROR when the connection closes.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::{error::ParseError, Response};

/// Builds the response (head and body) to a request that could not be parsed; `status`
/// is what actix-http would send (400, or 431 for a head that is too large). Called
/// before the connection closes; it should also log, as actix-http then only traces.
pub type MalformedRequestResponder = fn(&ParseError, crate::StatusCode) -> (Response<()>, Bytes);

static RESPONDER: OnceLock<MalformedRequestResponder> = OnceLock::new();

/// Sets the process-wide responder for unparsable requests (the first call wins).
pub fn set_malformed_request_responder(responder: MalformedRequestResponder) {
    let _ = RESPONDER.set(responder);
}

/// The head and body to send for `err`: the responder's, or upstream's empty one.
pub(crate) fn response(err: &ParseError, status: crate::StatusCode) -> (Response<()>, Bytes) {
    match RESPONDER.get() {
        Some(responder) => responder(err, status),
        None => (Response::with_body(status, ()), Bytes::new()),
    }
}
