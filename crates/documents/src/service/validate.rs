//! JSON Schemas: compiled with the linear-time `regex` engine and bounded pattern sizes,
//! and run on a blocking thread.

use serde_json::Value;
use shared_db::DbError;

use crate::model::DocumentError;

/// The most patterns (`pattern`, `patternProperties` names) one schema may hold.
pub const MAX_SCHEMA_PATTERNS: usize = 256;
/// The compiled size of one pattern, in bytes (the `regex` crate's `size_limit`).
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;
/// The lazy DFA cache of one pattern, in bytes (the `regex` crate's `dfa_size_limit`).
const PATTERN_DFA_SIZE_LIMIT: usize = 256 * 1024;

/// Refuses patterns the linear-time `regex` engine cannot compile (look-around,
/// backreferences) or that compile too large, naming the pattern. jsonschema compiles
/// `pattern` and `patternProperties` with the engine it is given, but the patterns
/// `unevaluatedProperties` consults always with a backtracking engine: checking every
/// pattern here keeps that engine on its linear path.
fn check_patterns(schema: &Value, count: &mut usize) -> Result<(), DocumentError> {
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            for s in items {
                check_patterns(s, count)?;
            }
        }
        return Ok(());
    };
    for (keyword, value) in map {
        match (keyword.as_str(), value) {
            ("pattern", Value::String(p)) => check_pattern(p, count)?,
            ("patternProperties", Value::Object(props)) => {
                for (p, s) in props {
                    check_pattern(p, count)?;
                    check_patterns(s, count)?;
                }
            }
            // Maps of names to schemas.
            ("properties" | "$defs" | "definitions" | "dependentSchemas" | "dependencies", Value::Object(m)) => {
                for s in m.values() {
                    check_patterns(s, count)?;
                }
            }
            // Instances, not schemas.
            ("const" | "enum" | "default" | "examples", _) => {}
            (_, v @ (Value::Object(_) | Value::Array(_))) => check_patterns(v, count)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_pattern(pattern: &str, count: &mut usize) -> Result<(), DocumentError> {
    *count += 1;
    if *count > MAX_SCHEMA_PATTERNS {
        return Err(DocumentError::InvalidSchema(format!(
            "a schema holds at most {MAX_SCHEMA_PATTERNS} patterns"
        )));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_DFA_SIZE_LIMIT)
        .build()
        .map(drop)
        .map_err(|e| {
            let reason = match e {
                regex::Error::CompiledTooBig(_) => "it compiles too large".to_owned(),
                other => other.to_string().lines().last().unwrap_or_default().trim().to_owned(),
            };
            DocumentError::InvalidSchema(format!(
                "the pattern {} is not supported: {reason} (patterns run on a linear-time engine: \
                 no look-around or backreferences)",
                Value::String(pattern.to_owned())
            ))
        })
}

/// The longest string `format: regex` accepts, in bytes.
const FORMAT_REGEX_MAX: usize = 4096;

/// `format: regex`: a pattern of at most [`FORMAT_REGEX_MAX`] bytes that the linear-time
/// `regex` crate compiles within the same size limits as schema patterns.
fn is_regex(s: &str) -> bool {
    s.len() <= FORMAT_REGEX_MAX
        && regex::RegexBuilder::new(s)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(PATTERN_DFA_SIZE_LIMIT)
            .build()
            .is_ok()
}

/// Compiles `schema` with the linear-time regex engine and bounded pattern sizes.
pub(crate) fn compile(schema: &Value) -> Result<jsonschema::Validator, DocumentError> {
    check_patterns(schema, &mut 0)?;
    jsonschema::options()
        .with_pattern_options(
            jsonschema::PatternOptions::regex()
                .size_limit(PATTERN_SIZE_LIMIT)
                .dfa_size_limit(PATTERN_DFA_SIZE_LIMIT),
        )
        // Replaces jsonschema's own `format: regex` check (checked by default for
        // drafts 4, 6 and 7), which re-parses the whole string once per `\cX` escape.
        .with_format("regex", is_regex)
        .build(schema)
        .map_err(|e| DocumentError::InvalidSchema(e.to_string()))
}

pub(crate) fn validate(schema: &Value, body: &Value) -> Result<(), DocumentError> {
    let validator = compile(schema)?;
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| {
            format!(
                "{}: {e}",
                if e.instance_path.as_str().is_empty() {
                    "/"
                } else {
                    e.instance_path.as_str()
                }
            )
        })
        .take(50)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DocumentError::SchemaViolation(errors))
    }
}

/// [`validate`] on a blocking thread, so a heavy schema never holds an async worker.
pub(crate) async fn validate_off_worker(schema: Value, body: Value) -> Result<Value, DocumentError> {
    tokio::task::spawn_blocking(move || validate(&schema, &body).map(|()| body))
        .await
        .map_err(|e| DbError::Corrupt(format!("schema validation stopped: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    /// jsonschema's own `format: regex` check re-parses the whole pattern once per `\cX`
    /// escape (quadratic): a 1 MB string of them ran for hours. The check used here
    /// refuses long strings and checks the rest with the linear `regex` crate.
    #[test]
    fn format_regex_strings_are_checked_in_linear_time() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"re": {"type": "string", "format": "regex"}}
        });
        let bomb = "\\cA".repeat(1 << 18);
        match validate(&schema, &json!({ "re": bomb })) {
            Err(DocumentError::SchemaViolation(errors)) => {
                assert!(errors.iter().any(|e| e.contains("/re")), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        validate(&schema, &json!({ "re": "^[a-z]+\\d{2,}$" })).unwrap();
        assert!(matches!(
            validate(&schema, &json!({ "re": "(unclosed" })),
            Err(DocumentError::SchemaViolation(_))
        ));
    }
}
