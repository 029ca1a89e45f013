//! The JSON body extractor. Like `actix_web::web::Json` (the same content-type check,
//! size limit and decompression), but a body of the wrong shape is a 422 that names the
//! field at fault by its path (`fields[0].title`) in `field` and `detail`, in plain
//! words ("expected a list, not an object") rather than serde's ("invalid type: map,
//! expected a sequence at line 1 column 54"). Text that is not JSON at all stays a 400
//! `malformed_json` with its line and column.

use std::ops::Deref;

use actix_web::dev::{JsonBody, Payload};
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::problem::{ApiError, json_error};

/// The most bytes a JSON body may have where no scope sets its own [`JsonLimit`].
pub const DEFAULT_JSON_LIMIT: usize = 2 * 1024 * 1024;

/// The most bytes a JSON body may have, as app data on an app or a scope.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

/// A JSON request body parsed into `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The parsed body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<JsonLimit>().map_or(DEFAULT_JSON_LIMIT, |l| l.0);
        // First the syntax (and the limit, the content type): a body that is not JSON
        // at all keeps the parser's own message with its line and column.
        let body = JsonBody::<Box<RawValue>>::new(req, payload, None, true).limit(limit);
        Box::pin(async move {
            let raw = body.await.map_err(json_error)?;
            parse(raw.get()).map(Json)
        })
    }
}

/// Parses well-formed JSON `text` into `T`, naming the field at fault when its shape is
/// wrong.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(shape_error)?;
    de.end()
        .map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))?;
    Ok(value)
}

fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !inner.is_data() {
        // Syntax was checked before; what is left is, say, nesting deeper than the
        // parser's recursion limit.
        return ApiError::bad_request("malformed_json", inner.to_string());
    }
    let (field, message) = explain(&path, &message_of(&inner));
    let detail = match &field {
        Some(f) => format!("{f}: {message}"),
        None => format!("the body: {message}"),
    };
    let error = ApiError::unprocessable("invalid_body", detail);
    match field {
        Some(f) => error.for_field(f),
        None => error,
    }
}

/// serde_json's message without its " at line L column C" (the path says where).
fn message_of(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&position).unwrap_or(&full).to_owned()
}

/// The field at fault and what is wrong with it, in plain words. `path` is
/// serde_path_to_error's (`.` for the body itself).
fn explain(path: &str, message: &str) -> (Option<String>, String) {
    let at = |name: &str| {
        if path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let field = (path != ".").then(|| path.to_owned());
    if let Some(name) = between(message, "missing field `", "`") {
        return (Some(at(name)), "required, but missing".into());
    }
    if let Some(name) = between(message, "unknown field `", "`") {
        let known = message
            .split_once(", expected ")
            .map(|(_, rest)| {
                let rest = rest.strip_prefix("one of ").unwrap_or(rest);
                format!("; known fields: {}", rest.replace('`', ""))
            })
            .unwrap_or_default();
        // serde_path_to_error already puts an unknown key on the path.
        let name = if path.ends_with(name) {
            path.to_owned()
        } else {
            at(name)
        };
        return (Some(name), format!("not a known field{known}"));
    }
    if let Some(name) = between(message, "duplicate field `", "`") {
        return (Some(at(name)), "given twice".into());
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((got, expected)) = rest.split_once("`, expected ")
    {
        return (field, format!("expected {expected}, not `{got}`"));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((got, expected)) = rest.split_once(", expected ")
        {
            return (
                field,
                format!("expected {}, not {}", expectation(expected), unexpected(got)),
            );
        }
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((len, expected)) = rest.split_once(", expected ")
    {
        return (field, format!("expected {}, not {len} items", expectation(expected)));
    }
    (field, message.to_owned())
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    s.strip_prefix(start)?.split(end).next()
}

/// What serde says a type expects, in the caller's words.
fn expectation(expected: &str) -> String {
    let e = expected.trim();
    let plain = match e {
        "a sequence" => "a list",
        "a map" => "an object",
        "a string" | "a borrowed string" | "a character" | "a char" => "text",
        "a boolean" => "true or false",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "unit" => "null",
        "a formatted date and time string or a unix timestamp" | "an RFC 3339 formatted date and time string" => {
            "a date and time in RFC 3339 (`2026-12-02T15:53:36Z`)"
        }
        _ if e.starts_with("struct ") || e.starts_with("struct variant ") => "an object",
        _ if e.starts_with("tuple") => "a list",
        _ if e.starts_with("enum ") => "one of the documented names",
        _ => return e.to_owned(),
    };
    plain.to_owned()
}

/// What serde says it found, in the caller's words.
fn unexpected(got: &str) -> String {
    let g = got.trim();
    let inner = |prefix: &str| g.strip_prefix(prefix).map(|v| v.trim_matches('`').to_owned());
    if g == "map" {
        "an object".into()
    } else if g == "sequence" {
        "a list".into()
    } else if g == "null" || g == "unit value" {
        "null".into()
    } else if let Some(s) = g.strip_prefix("string ") {
        format!("the text {s}")
    } else if let Some(n) = inner("integer ").or_else(|| inner("floating point ")) {
        format!("the number {n}")
    } else if let Some(b) = inner("boolean ") {
        b
    } else {
        g.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use actix_web::ResponseError;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read by serde only
    struct Body {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        count: Option<u32>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)] // read by serde only
    struct Item {
        title: String,
    }

    fn problem(text: &str) -> serde_json::Value {
        let e = parse::<Body>(text).unwrap_err();
        let mut v = serde_json::to_value(e.problem()).unwrap();
        v["status"] = e.status_code().as_u16().into();
        v
    }

    #[test]
    fn shape_errors_name_the_path_in_plain_words() {
        let cases = [
            (
                r#"{"name": "a", "items": {"title": "x"}}"#,
                "items",
                "items: expected a list, not an object",
            ),
            (
                r#"{"name": "a", "items": [{"title": 5}]}"#,
                "items[0].title",
                "items[0].title: expected text, not the number 5",
            ),
            (
                r#"{"name": "a", "count": "five"}"#,
                "count",
                r#"count: expected a whole number, 0 or more, not the text "five""#,
            ),
            (r#"{"items": []}"#, "name", "name: required, but missing"),
            (
                r#"{"name": "a", "colour": 1}"#,
                "colour",
                "colour: not a known field; known fields: name, items, count",
            ),
            (r#"{"name": null}"#, "name", "name: expected text, not null"),
        ];
        for (body, field, detail) in cases {
            let p = problem(body);
            assert_eq!(p["status"], 422, "{body}");
            assert_eq!(p["code"], "invalid_body", "{body}");
            assert_eq!(p["field"], field, "{body}");
            assert_eq!(p["detail"], detail, "{body}");
            assert!(!p["detail"].as_str().unwrap().contains("line 1"), "{body}");
        }
        let p = problem("5");
        assert_eq!(p["detail"], "the body: expected an object, not the number 5");
        assert!(p.get("field").is_none());
    }

    #[test]
    fn trailing_text_and_deep_nesting_are_syntax_errors() {
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        for text in [r#"{"name": "a"} x"#, deep.as_str()] {
            let e = parse::<serde_json::Value>(text).unwrap_err();
            assert_eq!(e.code(), "malformed_json", "{text}");
        }
    }
}
