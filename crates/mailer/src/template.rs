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
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    const MB: usize = 1 << 20;

    fn t(subject: &str, html: &str, text: &str) -> Parts {
        Parts {
            subject: subject.into(),
            html: Some(html.into()),
            text: Some(text.into()),
        }
    }

    #[test]
    fn renders_and_escapes_html_only() {
        let p = t(
            "Hello {{ name }}",
            "<p>{{ name }} {% for i in items %}<b>{{ i }}</b>{% endfor %}</p>",
            "{{ name }}",
        );
        let out = render(&p, &json!({"name": "<Tom & Jerry>", "items": [1, 2]}), MB).unwrap();
        assert_eq!(out.subject, "Hello <Tom & Jerry>");
        assert_eq!(out.html.unwrap(), "<p>&lt;Tom &amp; Jerry&gt; <b>1</b><b>2</b></p>");
        assert_eq!(out.text.unwrap(), "<Tom & Jerry>");
    }

    #[test]
    fn names_the_missing_variable() {
        let p = t("Hi {{ user.name }}", "{{ code }}", "x");
        assert_eq!(
            render(&p, &json!({"user": {"name": "a"}}), MB).unwrap_err(),
            TemplateError::Missing {
                name: "code".into(),
                part: "html"
            }
        );
        assert_eq!(
            render(&p, &json!({"user": {}, "code": 1}), MB).unwrap_err(),
            TemplateError::Missing {
                name: "user.name".into(),
                part: "subject"
            }
        );
        assert_eq!(variables(&p), vec!["code".to_owned(), "user".to_owned()]);
    }

    proptest::proptest! {
        /// Any template text and variables: a rendering or a named error, never a panic.
        #[test]
        fn arbitrary_templates_never_panic(
            subject in "[a-z {}%#|.()\\[\\]'\"0-9-]{0,60}",
            html in proptest::option::of("[<>a-z {}%|.()0-9]{0,80}"),
            name in "[a-z]{0,8}",
        ) {
            let parts = Parts { subject, html, text: None };
            let _ = check(&parts);
            let _ = variables(&parts);
            let _ = render(&parts, &json!({ "name": name, "n": 3, "items": [1, 2] }), MB);
        }
    }

    #[test]
    fn syntax_errors_name_the_part_and_line() {
        let e = check(&t("ok", "<p>\n{% if x %}", "")).unwrap_err();
        match e {
            TemplateError::Syntax { part, message } => {
                assert_eq!(part, "html");
                assert!(message.contains("line"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    fn limit_of(e: TemplateError) -> String {
        match e {
            TemplateError::Limit { message, .. } => message,
            other => panic!("{other:?}"),
        }
    }

    /// Nested `range(100000)` × `range(2000)` loops ran for 10 s on an HTTP worker (and
    /// larger ones for minutes): now the step bound stops them at once.
    #[test]
    fn nested_loops_run_out_of_steps() {
        let p = t(
            "x",
            "{% for i in range(100000) %}{% for j in range(2000) %}{{ i }}{% endfor %}{% endfor %}",
            "",
        );
        let message = limit_of(render(&p, &json!({}), 10 * MB).unwrap_err());
        assert!(message.contains("steps"), "{message}");
    }

    /// Output bombs: one huge value, a loop printing large strings, a long text loop.
    #[test]
    fn output_bombs_are_refused() {
        for bomb in [
            r#"{{ "x" * 100000000 }}"#,
            r#"{% for i in range(1000) %}{{ "y" * 100000 }}{% endfor %}"#,
            "{% for i in range(60000) %}0123456789abcdefghij{% endfor %}",
            r#"{% for i in range(3000) %}{{ big }}{% endfor %}"#,
        ] {
            let p = t("x", "", bomb);
            let e = render(&p, &json!({ "big": "z".repeat(5000) }), MB).unwrap_err();
            assert!(matches!(e, TemplateError::Limit { part: "text", .. }), "{bomb}: {e:?}");
        }
        // The limit is for the parts together.
        let p = t("x", &"h".repeat(600_000), &"t".repeat(600_000));
        assert!(matches!(
            render(&p, &json!({}), MB).unwrap_err(),
            TemplateError::Limit { part: "text", .. }
        ));
    }

    /// A large but ordinary template (a 5,000-row table) renders.
    #[test]
    fn large_legitimate_templates_render() {
        let items: Vec<_> = (0..5000)
            .map(|i| json!({"name": format!("item {i}"), "qty": i}))
            .collect();
        let p = t(
            "{{ items | length }} items",
            "<table>{% for i in items %}<tr><td>{{ i.name }}</td><td>{{ i.qty }}{% if i.qty in picked %}*{% endif %}</td></tr>{% endfor %}</table>",
            "{% for i in items %}{{ loop.index }}/{{ items | length }}. {{ i.name | upper }} x {{ i.qty * 2 }}\n{% endfor %}",
        );
        let picked: Vec<i64> = (0..1000).map(|i| i * 7).collect();
        let out = render(&p, &json!({ "items": items, "picked": picked }), 10 * MB).unwrap();
        assert_eq!(out.subject, "5000 items");
        let html = out.html.unwrap();
        assert!(html.contains("<tr><td>item 4999</td><td>4999</td></tr>"));
        assert!(html.contains("<tr><td>item 14</td><td>14*</td></tr>"));
        assert!(out.text.unwrap().ends_with("5000/5000. ITEM 4999 x 9998\n"));
    }

    /// Values built and never printed: doubling through `set`, a namespace growing in a
    /// loop, repeating or comparing large strings over and over, filters that amplify.
    /// Each is stopped by the output or work bound, not by running out of memory or time.
    #[test]
    fn intermediate_value_bombs_are_refused() {
        let big = "b".repeat(1 << 20);
        for bomb in [
            r#"{% set a = "x" * 1000000 %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{% set e = d ~ d %}{% set f = e ~ e %}{{ f | length }}"#,
            r#"{% set a = "x" * 1000000 %}{% set b = a + a %}{% set c = b + b %}{% set d = c + c %}{% set e = d + d %}{% set f = e + e %}{{ f | length }}"#,
            r#"{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"#,
            r#"{% for i in range(50000) %}{% if "x" * 1000000 %}{% endif %}{% endfor %}"#,
            r#"{% for i in range(50000) %}{% if big == other %}{% endif %}{% endfor %}"#,
            r#"{% for i in range(50000) %}{% if "zz" in big %}{% endif %}{% endfor %}"#,
            r#"{% for i in range(50000) %}{% if big[1:] %}{% endif %}{% endfor %}"#,
            r#"{% for i in range(50000) %}{% if big | upper %}{% endif %}{% endfor %}"#,
            r#"{% set s = ("ab" * 1000) | replace("", "z" * 100000) %}{{ s | length }}"#,
            r#"{{ (["x" * 4000] * 100000) | join | length }}"#,
            r#"{{ "a\nb\nc" | indent(100000000) | length }}"#,
            r#"{{ ((range(100000) | list) * 100000) | length }}"#,
        ] {
            let p = t("x", "", bomb);
            let e = render(&p, &json!({ "big": big, "other": big.clone() }), 10 * MB).unwrap_err();
            assert!(matches!(e, TemplateError::Limit { part: "text", .. }), "{bomb}: {e:?}");
        }
    }

    /// The checked operations keep minijinja's meaning.
    #[test]
    fn checked_operations_behave_as_before() {
        let p = t(
            "{{ a ~ b }} {{ n + 1 }} {{ n * 2 }} {{ s * 2 }} {{ s + s }} {{ (l + l) | length }} {{ s[1:] }} {{ l[0] }} {{ m['k'] }}",
            "{% if n > 1 and n >= 2 and n < 3 and n <= 2 and n == 2 and n != 3 and 'b' in s and 2 in l %}<b>{{ s | upper }}</b>{% endif %}{{ '<' ~ s }}",
            "{{ l | join(',') }} {{ s | replace('b', 'c') }} {{ 'x\ny' | indent(2) }} {{ s is lower }} {{ n is eq 2 }}",
        );
        let out = render(
            &p,
            &json!({"a": "A", "b": 1, "n": 2, "s": "ab", "l": [1, 2], "m": {"k": "v"}}),
            MB,
        )
        .unwrap();
        assert_eq!(out.subject, "A1 3 4 abab abab 4 b 1 v");
        assert_eq!(out.html.unwrap(), "<b>AB</b>&lt;ab");
        assert_eq!(out.text.unwrap(), "1,2 ac x\n  y True True");
    }

    /// A value that is not there (a nested path into a list, say) is still a missing
    /// variable inside the checked operations, as in minijinja's own.
    #[test]
    fn undefined_operands_are_missing_variables() {
        for text in [
            "{{ l.x ~ 1 }}",
            "{{ l.x + 1 }}",
            "{{ l.x * 2 }}",
            "{% if l.x == 1 %}{% endif %}",
        ] {
            let e = render(&t("x", "", text), &json!({"l": [1]}), MB).unwrap_err();
            assert!(matches!(e, TemplateError::Missing { .. }), "{text}: {e:?}");
        }
    }

    /// Filters that allocate room for a count or width before looking at their input
    /// (`batch`, `slice`, `indent`, `format` widths): a huge one aborted the whole
    /// process (allocation failure). Now refused as a limit; modest ones still work.
    #[test]
    fn huge_counts_and_widths_are_refused() {
        for bomb in [
            "{{ [] | batch(100000000000) }}",
            "{{ [1] | batch(100000000000, 0) }}",
            "{{ [1] | slice(100000000000, 0) }}",
            "{{ [] | slice(100000000000) }}",
            "{{ 'x' | indent(100000000000) }}",
            "{{ 'x' | indent(width=100000000000) }}",
            "{{ 'x\ny' | indent(width=100000000000, first=true) }}",
            "{{ '%100000000000d' | format(1) }}",
            "{{ '%.100000000000f' | format(1.5) }}",
            "{{ '%*d' | format(100000000000, 1) }}",
            "{{ '%(a)100000000000s' | format({'a': 1}) }}",
        ] {
            let e = render(&t("x", "", bomb), &json!({}), MB).unwrap_err();
            let message = limit_of(e);
            assert!(message.contains("10000"), "{bomb}: {message}");
        }
        let p = t(
            "{{ [1,2,3] | batch(2, 0) | list }} {{ [1,2,3] | slice(5) | list }} {{ range(20000) | batch(15000) | length }}",
            "",
            "{{ 'a\nb' | indent(width=3) }}|{{ '%5d|%-4s|%.2f' | format(7, 'ab', 1.5) }}",
        );
        let out = render(&p, &json!({}), MB).unwrap();
        assert_eq!(out.subject, "[[1, 2], [3, 0]] [[1], [2], [3], [], []] 2");
        assert_eq!(out.text.unwrap(), "a\n   b|    7|ab  |1.50");
        // The filters that take a width in Jinja2 but are not minijinja built-ins stay
        // unknown (were they added, they would need the same bound).
        for f in [
            "center(100000000000)",
            "wordwrap(100000000000)",
            "truncate(100000000000)",
            "urlize",
            "tojson(100000000000)",
        ] {
            let e = render(&t("x", "", &format!("{{{{ 'x' | {f} }}}}")), &json!({}), MB).unwrap_err();
            assert!(
                matches!(&e, TemplateError::Render { message, .. } if message.contains("unknown filter")),
                "{f}: {e:?}"
            );
        }
    }

    /// Lazily repeated lists of lists, and lists of big lists, compared, searched,
    /// sorted: minijinja walks every element in one instruction, so the work counts
    /// every nested element, and the runaway ones stop at the work bound.
    #[test]
    fn nested_repetition_is_charged_deeply() {
        let setup = "{% set A = [0] * 1000000 %}{% set B = [0] * 1000000 %}{% set L = [A, A, A, A, A, A, A, A, A, A] %}{% set M = [B, B, B, B, B, B, B, B, B, B] %}{% set L2 = [L, L, L, L, L, L, L, L, L, L] %}{% set M2 = [M, M, M, M, M, M, M, M, M, M] %}";
        for bomb in [
            "{% if [A] * 1000000 == [B] * 1000000 %}{% endif %}",
            "{% if L2 == M2 %}{% endif %}",
            "{% if L2 != M2 %}{% endif %}",
            "{% if L2 < M2 %}{% endif %}",
            "{% if [1] in L2 %}{% endif %}",
            "{% if [1] in [L] * 100000 %}{% endif %}",
            "{% if L2 is eq M2 %}{% endif %}",
            "{% if [1] is in L2 %}{% endif %}",
            "{{ L2 | sort | length }}",
            "{{ L2 | unique | length }}",
            "{{ L2 | max | length }}",
            "{{ L2 | min | length }}",
            "{{ [L2, M2] | dictsort | length }}",
            "{% for x in [L2, M2, L2] %}{% if loop.changed(x) %}{% endif %}{% endfor %}",
        ] {
            let p = t("x", "", &format!("{setup}{bomb}"));
            let e = render(&p, &json!({}), MB).unwrap_err();
            assert!(matches!(e, TemplateError::Limit { part: "text", .. }), "{bomb}: {e:?}");
        }
        // Ordinary nested data still compares, sorts and changes.
        let p = t(
            "{% if [[1, 2], [3]] == [[1, 2], [3]] and [3] in [[1, 2], [3]] %}eq{% endif %}",
            "",
            "{{ [[2], [1]] | sort }} {% for x in [1, 1, 2] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %} {{ ([[1]] * 3) | length }}",
        );
        let out = render(&p, &json!({}), MB).unwrap();
        assert_eq!(out.subject, "eq");
        assert_eq!(out.text.unwrap(), "[[1], [2]] 12 3");
    }

    /// A template defining a macro named like a checked operation would replace it.
    #[test]
    fn checked_operation_names_are_reserved() {
        let p = t("x", "", "{% macro __eb_mul(a, b) %}{% endmacro %}{{ 'x' * 3 }}");
        assert!(matches!(check(&p), Err(TemplateError::Syntax { .. })));
        assert!(matches!(render(&p, &json!({}), MB), Err(TemplateError::Syntax { .. })));
    }

    /// With one slot, a second rendering waits for the first: it answers busy when its
    /// wait is bounded, and renders once the slot is free when it may wait.
    #[tokio::test]
    async fn renders_wait_for_a_slot() {
        let renders = Renders::new(1);
        let held = renders.permits.clone().acquire_owned().await.unwrap();
        let p = t("hi {{ n }}", "", "");
        let busy = renders
            .render(
                p.clone(),
                json!({"n": 1}),
                MB,
                Some(std::time::Duration::from_millis(10)),
            )
            .await;
        assert_eq!(busy, Err(TemplateError::Busy));
        let waiting = tokio::spawn({
            let renders = renders.clone();
            let p = p.clone();
            async move { renders.render(p, json!({"n": 2}), MB, None).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        assert_eq!(waiting.await.unwrap().unwrap().subject, "hi 2");
        assert_eq!(
            renders
                .render(p, json!({"n": 3}), MB, Some(std::time::Duration::from_millis(10)))
                .await
                .unwrap()
                .subject,
            "hi 3"
        );
    }
}
