//! Bounds on what one rendering may build, beyond minijinja's fuel (which counts
//! instructions, not their cost): the compiled template is rewritten so that every
//! operation that can copy or grow a value (`~`, `+`, `*`, slicing, indexing,
//! comparisons, `in`) and every raw text chunk goes through a checked function, filters
//! and tests are wrapped the same way, and every emitted value is counted. Output is
//! refused past the byte limit, and work on large values (over [`FREE_BYTES`]) is
//! charged to a budget, so a loop that repeats, concatenates or compares big strings
//! stops early instead of running for minutes or growing memory without bound.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use minijinja::machinery::{Instruction, Instructions};
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State};

mod wrap;

use wrap::{items, too_big, wrap_filters, wrap_tests};

/// Work on values up to this size is not charged (fuel bounds how often it happens).
pub const FREE_BYTES: usize = 4096;
/// What looking at one item of a sequence counts for when charged.
const ITEM_BYTES: usize = 4;
/// The most items a repeated or concatenated sequence may hold.
const MAX_ITEMS: usize = 1_000_000;

/// What one rendering (all its parts) may still emit and do.
#[derive(Debug)]
pub struct Budget {
    output_left: AtomicUsize,
    work_left: AtomicUsize,
    output_limit: usize,
    work_limit: usize,
    output_exceeded: AtomicBool,
    work_exceeded: AtomicBool,
    count_exceeded: AtomicBool,
}

impl Budget {
    /// `output` bytes of output and `work` bytes of work on large values.
    pub fn new(output: usize, work: usize) -> Arc<Self> {
        Arc::new(Budget {
            output_left: AtomicUsize::new(output),
            work_left: AtomicUsize::new(work),
            output_limit: output,
            work_limit: work,
            output_exceeded: AtomicBool::new(false),
            work_exceeded: AtomicBool::new(false),
            count_exceeded: AtomicBool::new(false),
        })
    }

    /// Why a failed rendering failed, when it ran out of this budget.
    pub fn exceeded(&self) -> Option<String> {
        if self.output_exceeded.load(Ordering::Relaxed) {
            Some(format!(
                "the rendering would exceed {} bytes (the message size limit)",
                self.output_limit
            ))
        } else if self.work_exceeded.load(Ordering::Relaxed) {
            Some(format!(
                "the rendering builds or compares more than {} bytes of large values",
                self.work_limit
            ))
        } else if self.count_exceeded.load(Ordering::Relaxed) {
            Some(format!(
                "a filter is asked for more than {MAX_COUNT} items, columns or characters at once"
            ))
        } else {
            None
        }
    }

    /// Refuses a count or width argument over [`MAX_COUNT`].
    fn count(&self, n: Option<&Value>) -> Result<(), Error> {
        let Some(v) = n else { return Ok(()) };
        if v.kind() != ValueKind::Number {
            return Ok(());
        }
        match f64::try_from(v.clone()) {
            Ok(x) if x <= MAX_COUNT as f64 => Ok(()),
            // A number that is not one (NaN) is minijinja's to refuse.
            Ok(x) if x.is_nan() => Ok(()),
            _ => {
                self.count_exceeded.store(true, Ordering::Relaxed);
                Err(Error::new(ErrorKind::InvalidOperation, "template limit exceeded"))
            }
        }
    }

    fn take(left: &AtomicUsize, flag: &AtomicBool, n: usize) -> Result<(), Error> {
        let ok = left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(n))
            .is_ok();
        if ok {
            Ok(())
        } else {
            flag.store(true, Ordering::Relaxed);
            Err(Error::new(ErrorKind::InvalidOperation, "template limit exceeded"))
        }
    }

    /// Charges work on a value of `n` bytes (free when small).
    fn work(&self, n: usize) -> Result<(), Error> {
        if n <= FREE_BYTES {
            return Ok(());
        }
        Self::take(&self.work_left, &self.work_exceeded, n)
    }

    /// The cost of touching all of `v` (see [`deep`]), counted only as far as the work
    /// budget left (past that the charge fails anyway).
    fn measure(&self, v: &Value) -> usize {
        deep(v, self.work_left.load(Ordering::Relaxed).max(FREE_BYTES))
    }

    /// The smaller of the costs of `x` and `y` (what comparing them walks), found without
    /// walking the larger one much further than the smaller.
    fn measure_min(&self, x: &Value, y: &Value) -> usize {
        let left = self.work_left.load(Ordering::Relaxed);
        let mut cap = FREE_BYTES;
        loop {
            let (a, b) = (deep(x, cap), deep(y, cap));
            if a <= cap || b <= cap || cap > left {
                return a.min(b);
            }
            cap = cap.saturating_mul(4);
        }
    }

    /// Charges `n` bytes of output.
    fn output(&self, n: usize) -> Result<(), Error> {
        Self::take(&self.output_left, &self.output_exceeded, n)
    }

    /// Refuses a value of `n` bytes outright when it could never be emitted.
    fn fits(&self, n: usize) -> Result<(), Error> {
        if n > self.output_limit {
            self.output_exceeded.store(true, Ordering::Relaxed);
            return Err(Error::new(ErrorKind::InvalidOperation, "template limit exceeded"));
        }
        Ok(())
    }
}

/// The deepest nesting of sequences and maps a checked operation looks into (or prints).
const MAX_DEPTH: usize = 64;
/// The largest count or width a filter argument may ask for (`batch`, `slice`,
/// `indent`, `format` widths and precisions): minijinja allocates that much up front.
pub const MAX_COUNT: usize = 10_000;

/// The cost of touching all of `v` once: its bytes, or its items and everything in them
/// (nested sequences and maps, every repetition of a lazily repeated list, map keys and
/// values). Counting stops past `cap` (the result is then over `cap`, so walking costs at
/// most what is charged), and a value nested deeper than [`MAX_DEPTH`] counts as
/// `usize::MAX`. The walk keeps one iterator per level, never a copy of the items.
fn deep(v: &Value, cap: usize) -> usize {
    if let Some(s) = v.as_str() {
        return s.len();
    }
    let mut total = 0usize;
    let mut stack: Vec<(Value, minijinja::value::ValueIter)> = Vec::new();
    let mut next = Some(v.clone());
    loop {
        if let Some(v) = next.take() {
            match v.kind() {
                ValueKind::String => total = total.saturating_add(v.as_str().map_or(0, str::len)),
                ValueKind::Bytes => total = total.saturating_add(v.as_bytes().map_or(0, <[u8]>::len)),
                ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
                    if stack.len() >= MAX_DEPTH {
                        return usize::MAX;
                    }
                    if let Ok(it) = v.try_iter() {
                        stack.push((v, it));
                    }
                }
                _ => {}
            }
            if total > cap {
                return total;
            }
        }
        let Some((container, it)) = stack.last_mut() else {
            return total;
        };
        match it.next() {
            Some(item) => {
                total = total.saturating_add(ITEM_BYTES);
                if container.kind() == ValueKind::Map {
                    total = total.saturating_add(item.as_str().map_or(0, str::len));
                    next = container.get_item(&item).ok();
                } else {
                    next = Some(item);
                }
                if total > cap {
                    return total;
                }
            }
            None => {
                stack.pop();
            }
        }
    }
}

/// A `fmt::Write` that refuses to grow past `cap` bytes.
struct Capped {
    buf: String,
    cap: usize,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.buf.len() + s.len() > self.cap {
            return Err(std::fmt::Error);
        }
        self.buf.push_str(s);
        Ok(())
    }
}

/// `v` as text, when it is at most `cap` bytes.
fn display(v: &Value, cap: usize) -> Option<String> {
    if let Some(s) = v.as_str() {
        return (s.len() <= cap).then(|| s.to_owned());
    }
    // Printing recurses into nested values: refuse nesting too deep for the stack (it
    // would be found before `cap` bytes of text, as each item prints at least a byte).
    if deep(v, cap.saturating_mul(ITEM_BYTES)) == usize::MAX {
        return None;
    }
    let mut w = Capped {
        buf: String::new(),
        cap,
    };
    write!(w, "{v}").ok().map(|()| w.buf)
}

/// The compiled template with every raw chunk turned into a counted emit and every
/// growing or copying operation into a call of the checked function of that name
/// (registered by [`install`]); jump targets follow the moved instructions.
pub fn rewrite<'s>(code: &Instructions<'s>) -> Instructions<'s> {
    let n = code.len() as u32;
    let mut map = Vec::with_capacity(code.len() + 1);
    let mut at = 0u32;
    for i in 0..n {
        map.push(at);
        at += if matches!(code.get(i), Some(Instruction::EmitRaw(_))) {
            2
        } else {
            1
        };
    }
    map.push(at);
    let to = |t: &u32| map.get(*t as usize).copied().unwrap_or(at);
    let mut out = Instructions::new(code.name(), code.source());
    for i in 0..n {
        let Some(instr) = code.get(i) else { continue };
        let line = code.get_line(i).and_then(|l| u16::try_from(l).ok());
        let mut push = |ins: Instruction<'s>| match line {
            Some(l) => out.add_with_line(ins, l),
            None => out.add(ins),
        };
        let call = |name: &'static str, args: u16| Instruction::CallFunction(name, Some(args));
        match instr {
            Instruction::EmitRaw(s) => {
                push(Instruction::LoadConst(Value::from_safe_string((*s).to_owned())));
                push(Instruction::Emit);
            }
            Instruction::Add => {
                push(call("__eb_add", 2));
            }
            Instruction::Mul => {
                push(call("__eb_mul", 2));
            }
            Instruction::StringConcat => {
                push(call("__eb_concat", 2));
            }
            Instruction::Slice => {
                push(call("__eb_slice", 4));
            }
            Instruction::GetItem => {
                push(call("__eb_getitem", 2));
            }
            Instruction::In => {
                push(call("__eb_in", 2));
            }
            Instruction::Eq => {
                push(call("__eb_eq", 2));
            }
            Instruction::Ne => {
                push(call("__eb_ne", 2));
            }
            Instruction::Lt => {
                push(call("__eb_lt", 2));
            }
            Instruction::Lte => {
                push(call("__eb_lte", 2));
            }
            Instruction::Gt => {
                push(call("__eb_gt", 2));
            }
            Instruction::Gte => {
                push(call("__eb_gte", 2));
            }
            Instruction::CallMethod("changed", args) => {
                push(Instruction::CallFunction("__eb_changed", *args));
            }
            Instruction::Jump(t) => {
                push(Instruction::Jump(to(t)));
            }
            Instruction::JumpIfFalse(t) => {
                push(Instruction::JumpIfFalse(to(t)));
            }
            Instruction::JumpIfFalseOrPop(t) => {
                push(Instruction::JumpIfFalseOrPop(to(t)));
            }
            Instruction::JumpIfTrueOrPop(t) => {
                push(Instruction::JumpIfTrueOrPop(to(t)));
            }
            Instruction::Iterate(t) => {
                push(Instruction::Iterate(to(t)));
            }
            other => {
                push(other.clone());
            }
        }
    }
    out
}

/// The environment the unchecked operations run in, once their checks passed.
static OPS: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
});

/// One unchecked operation over `a`, `b`, `c` and `d`, compiled once.
struct Op {
    expr: LazyLock<Result<minijinja::Expression<'static, 'static>, Error>>,
}

impl Op {
    const fn new(init: fn() -> Result<minijinja::Expression<'static, 'static>, Error>) -> Self {
        Op {
            expr: LazyLock::new(init),
        }
    }

    fn eval(&self, a: Value, b: Value, c: Value, d: Value) -> Result<Value, Error> {
        match &*self.expr {
            Ok(e) => e.eval(minijinja::context! { a, b, c, d }),
            Err(e) => Err(Error::new(ErrorKind::InvalidOperation, e.to_string())),
        }
    }
}

static ADD: Op = Op::new(|| OPS.compile_expression("a + b"));
static MUL: Op = Op::new(|| OPS.compile_expression("a * b"));
static SLICE: Op = Op::new(|| OPS.compile_expression("a[b:c:d]"));
static IN: Op = Op::new(|| OPS.compile_expression("a in b"));

/// A comparison of two values.
type Compare = fn(&Value, &Value) -> bool;

fn undefined(v: &Value) -> Result<(), Error> {
    if v.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    Ok(())
}

/// Registers the checked operations, the wrapped filters and tests, and the counting
/// formatter on `env`, all charging `budget`.
pub fn install(env: &mut Environment<'_>, budget: &Arc<Budget>) {
    let b = budget.clone();
    env.add_function("__eb_concat", move |a: Value, c: Value| -> Result<Value, Error> {
        undefined(&a)?;
        undefined(&c)?;
        let (x, y) = (
            display(&a, b.output_limit).ok_or_else(|| too_big(&b))?,
            display(&c, b.output_limit).ok_or_else(|| too_big(&b))?,
        );
        b.fits(x.len() + y.len())?;
        b.work(x.len() + y.len())?;
        Ok(Value::from(x + &y))
    });
    let b = budget.clone();
    env.add_function("__eb_add", move |a: Value, c: Value| -> Result<Value, Error> {
        undefined(&a)?;
        undefined(&c)?;
        if a.kind() == ValueKind::String || c.kind() == ValueKind::String {
            b.fits(b.measure(&a).saturating_add(b.measure(&c)))?;
        } else if a.kind() == ValueKind::Seq || c.kind() == ValueKind::Seq {
            items(&b, a.len().unwrap_or(0).saturating_add(c.len().unwrap_or(0)))?;
        }
        b.work(b.measure(&a).saturating_add(b.measure(&c)))?;
        ADD.eval(a, c, Value::UNDEFINED, Value::UNDEFINED)
    });
    let b = budget.clone();
    env.add_function("__eb_mul", move |a: Value, c: Value| -> Result<Value, Error> {
        undefined(&a)?;
        undefined(&c)?;
        let count = |v: &Value| v.as_usize().unwrap_or(0);
        for (v, n) in [(&a, &c), (&c, &a)] {
            if let Some(s) = v.as_str() {
                let total = s.len().saturating_mul(count(n));
                b.fits(total)?;
                b.work(total)?;
            } else if matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable) {
                // What the repetition holds, nested lists and maps included (a list of
                // big lists repeated is as big as all of them), not just its length.
                let one = b.measure(v);
                b.work(one)?;
                items(&b, v.len().unwrap_or(0).saturating_mul(count(n)))?;
                items(&b, one.saturating_mul(count(n)) / ITEM_BYTES)?;
            }
        }
        MUL.eval(a, c, Value::UNDEFINED, Value::UNDEFINED)
    });
    let b = budget.clone();
    env.add_function(
        "__eb_slice",
        move |v: Value, start: Value, stop: Value, step: Value| -> Result<Value, Error> {
            b.work(b.measure(&v))?;
            SLICE.eval(v, start, stop, step)
        },
    );
    let b = budget.clone();
    env.add_function("__eb_getitem", move |v: Value, key: Value| -> Result<Value, Error> {
        undefined(&v)?;
        if v.kind() == ValueKind::String {
            b.work(b.measure(&v))?;
        }
        v.get_item(&key)
    });
    let b = budget.clone();
    env.add_function("__eb_in", move |needle: Value, hay: Value| -> Result<Value, Error> {
        // Looking for `needle` compares it with every item: at most all of `hay`.
        b.work(b.measure(&needle).saturating_add(b.measure(&hay)))?;
        IN.eval(needle, hay, Value::UNDEFINED, Value::UNDEFINED)
    });
    let compare: [(&'static str, Compare); 6] = [
        ("__eb_eq", |a, b| a == b),
        ("__eb_ne", |a, b| a != b),
        ("__eb_lt", |a, b| a < b),
        ("__eb_lte", |a, b| a <= b),
        ("__eb_gt", |a, b| a > b),
        ("__eb_gte", |a, b| a >= b),
    ];
    for (name, op) in compare {
        let b = budget.clone();
        env.add_function(name, move |x: Value, y: Value| -> Result<Value, Error> {
            undefined(&x)?;
            undefined(&y)?;
            b.work(b.measure_min(&x, &y))?;
            Ok(Value::from(op(&x, &y)))
        });
    }

    let b = budget.clone();
    env.add_function(
        "__eb_changed",
        move |state: &State, args: Rest<Value>| -> Result<Value, Error> {
            let Some((lp, values)) = args.split_first() else {
                return Err(Error::from(ErrorKind::MissingArgument));
            };
            // `loop.changed(x)` keeps `x` and compares it with the last one.
            let mut cost = 0usize;
            for v in values {
                cost = cost.saturating_add(b.measure(v));
            }
            b.work(cost.saturating_mul(2))?;
            lp.call_method(state, "changed", values)
        },
    );

    wrap_filters(env, budget);
    wrap_tests(env, budget);

    let b = budget.clone();
    env.set_formatter(move |out, state, value| {
        let n = match value.as_str() {
            Some(s) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
                s.len()
                    + 5 * s
                        .bytes()
                        .filter(|c| matches!(c, b'&' | b'<' | b'>' | b'"' | b'\'' | b'/'))
                        .count()
            }
            Some(s) => s.len(),
            None => display(value, b.output_limit).ok_or_else(|| too_big(&b))?.len() * 6,
        };
        b.output(n)?;
        minijinja::escape_formatter(out, state, value)
    });
}
