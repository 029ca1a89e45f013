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
