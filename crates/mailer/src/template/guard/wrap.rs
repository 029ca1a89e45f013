//! The guard's accounting for filters and tests: each is wrapped so that its cost is
//! estimated from its arguments and charged to the rendering's budget before it runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

use super::{Budget, ITEM_BYTES, MAX_ITEMS, display};

pub(super) fn too_big(b: &Budget) -> Error {
    b.output_exceeded.store(true, Ordering::Relaxed);
    Error::new(ErrorKind::InvalidOperation, "template limit exceeded")
}

pub(super) fn items(b: &Budget, n: usize) -> Result<(), Error> {
    if n > MAX_ITEMS {
        b.work_exceeded.store(true, Ordering::Relaxed);
        return Err(Error::new(ErrorKind::InvalidOperation, "template limit exceeded"));
    }
    Ok(())
}

/// Whether the widths and precisions of a `format` string (`%10s`, `%.3f`, `%*d` taking
/// the width from the arguments) stay within [`MAX_COUNT`]: minijinja pads to them.
/// Refuses (with the budget's error) when one does not.
fn format_widths(args: &[Value], budget: &Budget) -> Result<(), Error> {
    let Some(fmt) = args.first().and_then(Value::as_str) else {
        return Ok(());
    };
    let b = fmt.as_bytes();
    let mut rest = args.iter().skip(1);
    let mut i = 0;
    while i < b.len() {
        if b.get(i) != Some(&b'%') {
            i += 1;
            continue;
        }
        i += 1;
        if b.get(i) == Some(&b'%') {
            i += 1;
            continue;
        }
        if b.get(i) == Some(&b'(') {
            while i < b.len() && b.get(i) != Some(&b')') {
                i += 1;
            }
            i += 1;
        }
        while matches!(b.get(i), Some(b'#' | b'0' | b'-' | b' ' | b'+')) {
            i += 1;
        }
        for precision in [false, true] {
            if precision {
                if b.get(i) != Some(&b'.') {
                    break;
                }
                i += 1;
            }
            if b.get(i) == Some(&b'*') {
                i += 1;
                budget.count(rest.next())?;
                continue;
            }
            let mut n = 0usize;
            while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
                n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
                i += 1;
            }
            budget.count(Some(&Value::from(n)))?;
        }
        // The conversion takes the next argument.
        rest.next();
        i += 1;
    }
    Ok(())
}

/// How big a filter's result can get beyond its input, checked before it runs.
fn estimate(name: &str, args: &[Value], budget: &Budget) -> Result<usize, Error> {
    if name == "format" {
        format_widths(args, budget)?;
    }
    // Measured only where needed: measuring a large list walks it.
    let input = || args.first().map(|v| budget.measure(v)).unwrap_or(0);
    Ok(match name {
        // Both allocate room for `count` items before looking at the input (and `batch`
        // pads the last batch to `count`): a count larger than the input and than
        // MAX_COUNT is refused, whatever the input (an empty list included).
        "batch" | "slice" => {
            let len = args.first().and_then(Value::len).unwrap_or(0);
            let count = args.get(1).and_then(Value::as_usize);
            if count.is_none_or(|c| c > len) {
                budget.count(args.get(1))?;
            }
            input().saturating_add(count.unwrap_or(0).saturating_mul(ITEM_BYTES))
        }
        "replace" => {
            let (Some(s), Some(from), Some(to)) = (
                args.first().and_then(Value::as_str),
                args.get(1).and_then(Value::as_str),
                args.get(2).and_then(Value::as_str),
            ) else {
                return Ok(input());
            };
            let hits = if from.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(from).count()
            };
            s.len().saturating_add(hits.saturating_mul(to.len()))
        }
        "indent" => {
            // The width is positional or `width=`: the indentation is built before the
            // first line is looked at.
            let kwarg = args
                .iter()
                .skip(1)
                .find(|a| a.kind() == ValueKind::Map)
                .and_then(|k| k.get_attr("width").ok())
                .filter(|w| !w.is_undefined());
            let positional = args.get(1).filter(|a| a.kind() != ValueKind::Map);
            budget.count(positional)?;
            budget.count(kwarg.as_ref())?;
            let width = positional.or(kwarg.as_ref()).and_then(Value::as_usize).unwrap_or(4);
            let lines = args
                .first()
                .and_then(Value::as_str)
                .map_or(1, |s| s.lines().count() + 1);
            input().saturating_add(lines.saturating_mul(width))
        }
        "join" | "string" | "pprint" | "format" | "list" | "sort" | "unique" | "reverse" | "lines" | "split" => {
            // Everything these touch, shown as text, within the output limit.
            let mut total = 0usize;
            for a in args {
                let shown = display(a, budget.output_limit).ok_or_else(|| too_big(budget))?;
                total = total.saturating_add(shown.len());
            }
            let sep = if name == "join" {
                args.get(1)
                    .map(|v| budget.measure(v))
                    .unwrap_or(0)
                    .saturating_mul(args.first().and_then(Value::len).unwrap_or(0))
            } else {
                0
            };
            total.saturating_add(sep)
        }
        // These look at a sequence's length or first item only; a string they scan.
        "length" | "count" | "first" | "attr" | "default" | "d" | "int" | "float" | "abs" | "round" | "bool" => {
            args.iter().filter_map(Value::as_str).map(str::len).sum()
        }
        _ => args.iter().map(|v| budget.measure(v)).fold(0, usize::saturating_add),
    })
}

fn wrap(env: &mut Environment<'_>, budget: &Arc<Budget>, name: &'static str, f: Value, filter: bool) {
    let b = budget.clone();
    let run = move |state: &State, args: Rest<Value>| -> Result<Value, Error> {
        let est = estimate(name, &args, &b)?;
        b.fits(est)?;
        b.work(est)?;
        if matches!(name, "sort" | "unique" | "dictsort" | "groupby") {
            // About n log n comparisons, each walking what it compares.
            let n = args.first().and_then(Value::len).unwrap_or(0);
            let rounds = (usize::BITS - n.leading_zeros()).max(1) as usize;
            let whole = args.first().map(|v| b.measure(v)).unwrap_or(0);
            b.work(whole.saturating_mul(rounds))?;
        }
        let rv = f.call(state, &args)?;
        b.work(b.measure(&rv))?;
        Ok(rv)
    };
    if filter {
        env.add_filter(name, run);
    } else {
        env.add_test(name, move |state: &State, args: Rest<Value>| -> Result<bool, Error> {
            run(state, args).map(|v| v.is_true())
        });
    }
}

pub(super) fn wrap_filters(env: &mut Environment<'_>, budget: &Arc<Budget>) {
    use minijinja::filters as f;
    let all: Vec<(&'static str, Value)> = vec![
        ("safe", Value::from_function(f::safe)),
        ("escape", Value::from_function(f::escape)),
        ("e", Value::from_function(f::escape)),
        ("lower", Value::from_function(f::lower)),
        ("upper", Value::from_function(f::upper)),
        ("title", Value::from_function(f::title)),
        ("capitalize", Value::from_function(f::capitalize)),
        ("replace", Value::from_function(f::replace)),
        ("length", Value::from_function(f::length)),
        ("count", Value::from_function(f::length)),
        ("dictsort", Value::from_function(f::dictsort)),
        ("items", Value::from_function(f::items)),
        ("reverse", Value::from_function(f::reverse)),
        ("trim", Value::from_function(f::trim)),
        ("join", Value::from_function(f::join)),
        ("split", Value::from_function(f::split)),
        ("lines", Value::from_function(f::lines)),
        ("first", Value::from_function(f::first)),
        ("last", Value::from_function(f::last)),
        ("min", Value::from_function(f::min)),
        ("max", Value::from_function(f::max)),
        ("sort", Value::from_function(f::sort)),
        ("list", Value::from_function(f::list)),
        ("string", Value::from_function(f::string)),
        ("batch", Value::from_function(f::batch)),
        ("slice", Value::from_function(f::slice)),
        ("sum", Value::from_function(f::sum)),
        ("indent", Value::from_function(f::indent)),
        ("unique", Value::from_function(f::unique)),
        ("chain", Value::from_function(f::chain)),
        ("zip", Value::from_function(f::zip)),
        ("pprint", Value::from_function(f::pprint)),
        ("format", Value::from_function(f::format)),
        ("groupby", Value::from_function(f::groupby)),
        ("select", Value::from_function(f::select)),
        ("reject", Value::from_function(f::reject)),
        ("selectattr", Value::from_function(f::selectattr)),
        ("rejectattr", Value::from_function(f::rejectattr)),
        ("map", Value::from_function(f::map)),
        ("attr", Value::from_function(f::attr)),
    ];
    for (name, func) in all {
        wrap(env, budget, name, func, true);
    }
}

pub(super) fn wrap_tests(env: &mut Environment<'_>, budget: &Arc<Budget>) {
    use minijinja::tests as t;
    let all: Vec<(&'static str, Value)> = vec![
        ("lower", Value::from_function(t::is_lower)),
        ("upper", Value::from_function(t::is_upper)),
        ("eq", Value::from_function(t::is_eq)),
        ("equalto", Value::from_function(t::is_eq)),
        ("==", Value::from_function(t::is_eq)),
        ("ne", Value::from_function(t::is_ne)),
        ("!=", Value::from_function(t::is_ne)),
        ("lt", Value::from_function(t::is_lt)),
        ("lessthan", Value::from_function(t::is_lt)),
        ("<", Value::from_function(t::is_lt)),
        ("le", Value::from_function(t::is_le)),
        ("<=", Value::from_function(t::is_le)),
        ("gt", Value::from_function(t::is_gt)),
        ("greaterthan", Value::from_function(t::is_gt)),
        (">", Value::from_function(t::is_gt)),
        ("ge", Value::from_function(t::is_ge)),
        (">=", Value::from_function(t::is_ge)),
        ("in", Value::from_function(t::is_in)),
        ("startingwith", Value::from_function(t::is_startingwith)),
        ("endingwith", Value::from_function(t::is_endingwith)),
    ];
    for (name, func) in all {
        wrap(env, budget, name, func, false);
    }
}
