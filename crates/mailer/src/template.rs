//! Email templates: a subject, an HTML part and a text part in minijinja syntax
//! (`{{ name }}`, `{% if %}`, filters). The HTML part is escaped by default; a variable
//! the template uses but the caller did not give is an error naming it, never a
//! half-filled mail.
//!
//! Rendering is bounded: at most [`FUEL`] steps of the template engine and at most the
//! caller's byte limit of output, so a runaway template (nested loops, a repeated
//! string) fails fast with [`TemplateError::Limit`] instead of running for minutes and
//! growing without bound. It is CPU work: async callers run it on a blocking thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::machinery::{CompiledTemplate, TemplateConfig, Vm, WhitespaceConfig, make_string_output};
use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

mod guard;

/// How much work one rendering of one part may do, in minijinja fuel (about one unit
/// per engine instruction: a loop iteration that prints one value costs a handful).
pub const FUEL: u64 = 250_000;

/// Work on large values (building, copying or comparing strings and lists over 4 KiB)
/// one rendering may do, in bytes, when four times its output limit is less.
pub const WORK_BYTES: usize = 64 * 1024 * 1024;

/// The parts of a template (or of one rendering of it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parts {
    /// The subject line.
    pub subject: String,
    /// The HTML body.
    pub html: Option<String>,
    /// The plain-text body.
    pub text: Option<String>,
}

/// Why a template cannot be stored or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A part does not parse.
    #[error("{part}: {message}")]
    Syntax {
        /// `subject`, `html` or `text`.
        part: &'static str,
        /// The parser's message, with the line.
        message: String,
    },
    /// A variable the template uses was not given.
    #[error("missing variable `{name}` (used in the {part})")]
    Missing {
        /// The variable (`user.name` for a nested one).
        name: String,
        /// Where it is used.
        part: &'static str,
    },
    /// Rendering would exceed its bounds ([`FUEL`] steps, or the output limit).
    #[error("{part}: {message}")]
    Limit {
        /// The part.
        part: &'static str,
        /// Which bound, and its value.
        message: String,
    },
    /// Every rendering slot stayed taken for the caller's whole wait (see [`Renders`]).
    #[error("too many templates are being rendered; retry shortly")]
    Busy,
    /// Rendering failed otherwise (a filter's error, for instance).
    #[error("{part}: {message}")]
    Render {
        /// The part.
        part: &'static str,
        /// What failed.
        message: String,
    },
}

fn escaping(name: &str) -> AutoEscape {
    if name == "html" {
        AutoEscape::Html
    } else {
        AutoEscape::None
    }
}

fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(escaping);
    env
}

fn each(parts: &Parts) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("subject", Some(parts.subject.as_str())),
        ("html", parts.html.as_deref()),
        ("text", parts.text.as_deref()),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
}

/// The prefix of the checked operations' names (see `guard`): a template may not define
/// or call them itself (a macro of that name would replace the check).
const RESERVED: &str = "__eb_";

fn reserved(part: &'static str, source: &str) -> Result<(), TemplateError> {
    if source.contains(RESERVED) {
        return Err(TemplateError::Syntax {
            part,
            message: format!("names starting with `{RESERVED}` are reserved"),
        });
    }
    Ok(())
}

/// The renderings that may run at once (each may do up to [`WORK_BYTES`] of work and
/// build its output limit), so they never take all of tokio's blocking threads, which
/// also run every SQLite query. One set is shared by the mailer and the bridge.
#[derive(Debug, Clone)]
pub struct Renders {
    permits: Arc<tokio::sync::Semaphore>,
}

impl Renders {
    /// At most `slots` renderings at once (at least one).
    pub fn new(slots: usize) -> Self {
        Renders {
            permits: Arc::new(tokio::sync::Semaphore::new(slots.max(1))),
        }
    }

    /// The process-wide set: one slot per available core, at least two.
    pub fn shared() -> &'static Renders {
        static SHARED: std::sync::LazyLock<Renders> = std::sync::LazyLock::new(|| {
            Renders::new(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2))
        });
        &SHARED
    }

    /// [`render`] on a blocking thread once a slot is free: waiting at most `wait`
    /// (then [`TemplateError::Busy`]), or as long as it takes when `wait` is `None`.
    pub async fn render(
        &self,
        parts: Parts,
        variables: Value,
        max_bytes: usize,
        wait: Option<std::time::Duration>,
    ) -> Result<Parts, TemplateError> {
        let acquire = self.permits.clone().acquire_owned();
        let permit = match wait {
            Some(w) => tokio::time::timeout(w, acquire)
                .await
                .map_err(|_| TemplateError::Busy)?,
            None => acquire.await,
        }
        .map_err(|_| TemplateError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            render(&parts, &variables, max_bytes)
        })
        .await
        .map_err(|e| TemplateError::Render {
            part: "template",
            message: format!("rendering stopped: {e}"),
        })?
    }
}

/// Checks that every part parses.
pub fn check(parts: &Parts) -> Result<(), TemplateError> {
    let env = environment();
    for (part, source) in each(parts) {
        reserved(part, source)?;
        env.template_from_named_str(part, source)
            .map_err(|e| TemplateError::Syntax {
                part,
                message: describe(&e),
            })?;
    }
    Ok(())
}

/// The variables the template uses at top level, sorted.
pub fn variables(parts: &Parts) -> Vec<String> {
    let env = environment();
    let mut names: Vec<String> = each(parts)
        .filter_map(|(part, source)| env.template_from_named_str(part, source).ok())
        .flat_map(|t| t.undeclared_variables(false))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Renders every part with `variables` (a JSON object), all parts together producing at
/// most `max_bytes`, each within [`FUEL`] steps, and all of them within [`WORK_BYTES`]
/// (or four times `max_bytes`) of work on large values.
pub fn render(parts: &Parts, variables: &Value, max_bytes: usize) -> Result<Parts, TemplateError> {
    let budget = guard::Budget::new(max_bytes, WORK_BYTES.max(max_bytes.saturating_mul(4)));
    let mut env = environment();
    guard::install(&mut env, &budget);
    let config = TemplateConfig {
        syntax_config: SyntaxConfig,
        ws_config: WhitespaceConfig::default(),
        default_auto_escape: Arc::new(escaping),
    };
    let ctx = minijinja::Value::from_serialize(variables);
    let mut out = Parts::default();
    for (part, source) in each(parts) {
        let syntax = |e: minijinja::Error| TemplateError::Syntax {
            part,
            message: describe(&e),
        };
        reserved(part, source)?;
        let tmpl = env.template_from_named_str(part, source).map_err(syntax)?;
        let mut used: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
        used.sort();
        if let Some(name) = used.into_iter().find(|path| !present(variables, path)) {
            return Err(TemplateError::Missing { name, part });
        }
        // The same template, compiled again to be run with every growing operation
        // checked (see `guard`).
        let compiled = CompiledTemplate::new(part, source, &config).map_err(syntax)?;
        let code = guard::rewrite(&compiled.instructions);
        let blocks: BTreeMap<&str, _> = compiled.blocks.iter().map(|(k, v)| (*k, guard::rewrite(v))).collect();
        let mut rendered = String::new();
        let result = Vm::new(&env).eval(
            &code,
            ctx.clone(),
            &blocks,
            &mut make_string_output(&mut rendered),
            compiled.initial_auto_escape,
        );
        if let Err(e) = result {
            return Err(match (budget.exceeded(), e.kind()) {
                (Some(message), _) => TemplateError::Limit { part, message },
                (None, ErrorKind::OutOfFuel) => TemplateError::Limit {
                    part,
                    message: format!(
                        "the rendering takes more than {FUEL} steps (loops too long or too deeply nested)"
                    ),
                },
                (None, ErrorKind::UndefinedError) => TemplateError::Missing {
                    name: e.detail().unwrap_or("a variable").to_owned(),
                    part,
                },
                _ => TemplateError::Render {
                    part,
                    message: describe(&e),
                },
            });
        }
        match part {
            "subject" => out.subject = rendered.trim().to_owned(),
            "html" => out.html = Some(rendered),
            _ => out.text = Some(rendered),
        }
    }
    Ok(out)
}

/// Whether a dotted path (`user.name`) resolves in `vars`. Names that are minijinja
/// globals (`range`, `loop`...) count as present.
fn present(vars: &Value, path: &str) -> bool {
    let mut segments = path.split('.');
    let Some(first) = segments.next() else {
        return true;
    };
    let Some(mut v) = vars.get(first) else {
        return matches!(
            first,
            "range" | "dict" | "namespace" | "debug" | "loop" | "self" | "super"
        );
    };
    for s in segments {
        match v.get(s) {
            Some(next) => v = next,
            // A nested path into a non-object may be a method or a filter's job.
            None => return !v.is_object(),
        }
    }
    true
}

fn describe(e: &minijinja::Error) -> String {
    let mut m = e.kind().to_string();
    if let Some(d) = e.detail() {
        m = format!("{m}: {d}");
    }
    if let Some(line) = e.line() {
        m = format!("{m} (line {line})");
    }
    m
}

#[cfg(test)]
mod tests;
