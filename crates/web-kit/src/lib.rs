//! The gateway's domain-agnostic HTTP pieces, for any actix-web service: RFC 9457
//! problem documents ([`problem`]), the JSON body extractor that names the field at fault
//! ([`json`]), CORS ([`cors`]), client addresses behind trusted proxies, connection
//! limits and body timeouts ([`net`]), per-address and per-key rate limits
//! ([`ratelimit`]), the route table read from an OpenAPI document ([`routes`]), and
//! request ids with one log line per request ([`telemetry`]); and for bodies: conditional
//! request headers and checksums ([`conditional`]), streaming a request body into a
//! sendable writer ([`body`]), `multipart/form-data` fields ([`multipart`]) and the
//! UTF-8 checks of a path and a query ([`utf8`]); and answers many routes document alike
//! ([`responses`]).
//!
//! It knows no domain crate: the gateway composes it with them.

pub mod body;
pub mod conditional;
pub mod cors;
pub mod json;
pub mod multipart;
pub mod net;
pub mod problem;
pub mod ratelimit;
pub mod respond;
pub mod responses;
pub mod routes;
pub mod telemetry;
pub mod utf8;

pub use problem::{ApiError, FieldProblem, PROBLEM_JSON, Problem};
