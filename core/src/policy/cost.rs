//! Operation accounting that covers callbacks and size-dependent builtins.
//!
//! rhai counts operations per call, but a builtin that calls a script function (`reduce`,
//! `map`, `sort`, ...) runs it on a copy of the count that is thrown away afterwards, so a
//! loop around such a call ran millions of callback operations on a budget of 100,000. And a
//! builtin that builds a 16 KiB string counts as one operation.
//!
//! So the sandbox keeps its own count, in the thread's collector: every operation rhai
//! tracks, wherever it runs, adds one (through the progress hook, which rhai calls on each
//! operation, in callbacks too), each callback adds [`CALLBACK_OPERATIONS`], and the builtins whose work grows with their input or output
//! add their size ([`charge`]). The count is reset before each call and compared with
//! [`MAX_OPERATIONS`]: a count, never time, so native and WASM builds agree.
//!
//! `sort` and `dedup` with a callback are replaced: rhai's versions drop the callback's
//! errors (a comparator that loops or throws left the record accepted), and the standard
//! sort may panic on a comparator that is not a total order, which wasm32 cannot catch.

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, NativeCallContext, INT};

use super::script::with_collector;
use super::MAX_OPERATIONS;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Extra operations each callback a builtin makes (`map`, `filter`, `reduce`, ...) counts,
/// besides the operations it runs: starting one costs rhai about as much as 30 operations.
pub const CALLBACK_OPERATIONS: u64 = 32;

/// Bytes of text a builtin may read or write for one operation.
pub const BYTES_PER_OPERATION: u64 = 64;

/// Array items (or map entries) a builtin may touch for one operation.
pub const ITEMS_PER_OPERATION: u64 = 4;

/// The value the progress hook stops a call with; [`super::sandbox::describe`] names the
/// operations limit for it.
pub(crate) const STOP: &str = "metergate: operations limit";

fn over_limit() -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTooManyOperations(rhai::Position::NONE))
}

/// Adds `n` operations to the running call's count; an error once past [`MAX_OPERATIONS`].
/// Past the limit, the call fails even if the script catches the error.
pub(crate) fn charge(n: u64) -> Res<()> {
    let over = with_collector(|c| {
        c.ops = c.ops.saturating_add(n);
        c.ops > MAX_OPERATIONS
    });
    if over == Some(true) {
        Err(over_limit())
    } else {
        Ok(())
    }
}

/// Bytes of text in a variable the script may read for one operation.
pub const READ_BYTES_PER_OPERATION: u64 = 256;

/// Array items or map entries in a variable the script may read for one operation.
pub const READ_ITEMS_PER_OPERATION: u64 = 16;

/// Charges for reading a variable that holds `bytes` of text and `items` array items or map
/// entries: whatever a builtin then does with it costs about its size. Lighter than a
/// builtin's charge, as most reads only index or compare (`a[i]` in a loop over 1,000 items
/// reads the whole array each time).
pub(crate) fn charge_read(bytes: usize, items: usize) -> Res<()> {
    charge(bytes as u64 / READ_BYTES_PER_OPERATION + items as u64 / READ_ITEMS_PER_OPERATION)
}

/// Charges for `bytes` bytes of text.
pub(crate) fn charge_bytes(bytes: usize) -> Res<()> {
    charge(bytes as u64 / BYTES_PER_OPERATION)
}

/// Charges for `items` array items or map entries.
pub(crate) fn charge_items(items: usize) -> Res<()> {
    charge(items as u64 / ITEMS_PER_OPERATION)
}

/// Calls `f` with two arguments, counting the call as one operation.
fn call(ctx: &NativeCallContext, f: &FnPtr, args: [Dynamic; 2]) -> Res<Dynamic> {
    charge(1)?;
    f.call_raw(ctx, None, args)
}

fn ordering(v: &Dynamic) -> Res<std::cmp::Ordering> {
    use std::cmp::Ordering::{Greater, Less};
    if let Ok(n) = v.as_int() {
        Ok(n.cmp(&0))
    } else if let Ok(b) = v.as_bool() {
        Ok(if b { Less } else { Greater })
    } else {
        Err(super::time::script_error(format!(
            "the sort comparer returned {}, not an integer or a boolean",
            v.type_name()
        )))
    }
}

/// A stable merge sort that stops at the comparer's first error. It never panics, whatever
/// the comparer answers, and calls it O(n log n) times.
fn sort_by(ctx: NativeCallContext, array: &mut Array, f: FnPtr) -> Res<()> {
    let n = array.len();
    if n <= 1 {
        return Ok(());
    }
    charge_items(n)?;
    let mut idx: Vec<usize> = (0..n).collect();
    let mut tmp: Vec<usize> = Vec::with_capacity(n);
    let mut width = 1;
    while width < n {
        tmp.clear();
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j) = (start, mid);
            while i < mid && j < end {
                let (a, b) = (idx[i], idx[j]);
                let args = [array[b].clone(), array[a].clone()];
                // Take from the right run only when it is strictly less: stable.
                if ordering(&call(&ctx, &f, args)?)? == std::cmp::Ordering::Less {
                    tmp.push(b);
                    j += 1;
                } else {
                    tmp.push(a);
                    i += 1;
                }
            }
            tmp.extend_from_slice(&idx[i..mid]);
            tmp.extend_from_slice(&idx[j..end]);
            start = end;
        }
        std::mem::swap(&mut idx, &mut tmp);
        width = width.saturating_mul(2);
    }
    let mut slots: Vec<Option<Dynamic>> = std::mem::take(array).into_iter().map(Some).collect();
    *array = idx
        .iter()
        .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect();
    Ok(())
}

/// Removes each item the callback says equals the last one kept (`f(kept, item)`), stopping
/// at the callback's first error.
fn dedup_by(ctx: NativeCallContext, array: &mut Array, f: FnPtr) -> Res<()> {
    if array.len() <= 1 {
        return Ok(());
    }
    let mut kept: Array = Vec::with_capacity(array.len());
    for item in array.iter() {
        if let Some(last) = kept.last() {
            let same = call(&ctx, &f, [last.clone(), item.clone()])?;
            let same = same.as_bool().map_err(|t| {
                super::time::script_error(format!("the dedup callback returned {t}, not a boolean"))
            })?;
            if same {
                continue;
            }
        }
        kept.push(item.clone());
    }
    *array = kept;
    Ok(())
}

fn fn_ptr(name: &str) -> Res<FnPtr> {
    FnPtr::new(name)
}

/// Installs the count and the replaced builtins.
pub(crate) fn register(engine: &mut Engine) {
    engine.on_progress(|n| {
        let over = with_collector(|c| {
            // rhai's count goes back when a builtin starts the next callback on a fresh copy:
            // a callback costs far more than an operation (rhai copies its state for it).
            let cost = if n <= c.last_progress {
                1 + CALLBACK_OPERATIONS
            } else {
                1
            };
            c.last_progress = n;
            c.ops = c.ops.saturating_add(cost);
            c.ops > MAX_OPERATIONS
        });
        (over == Some(true)).then(|| Dynamic::from(ImmutableString::from(STOP)))
    });

    engine
        .register_fn("sort", sort_by)
        .register_fn(
            "sort",
            |ctx: NativeCallContext, a: &mut Array, name: &str| sort_by(ctx, a, fn_ptr(name)?),
        )
        .register_fn("dedup", dedup_by)
        .register_fn(
            "dedup",
            |ctx: NativeCallContext, a: &mut Array, name: &str| dedup_by(ctx, a, fn_ptr(name)?),
        );

    register_text(engine);

    // Padding builds up to a full-size string or array from a small call.
    engine
        .register_fn(
            "pad",
            |ctx: NativeCallContext, s: &mut ImmutableString, len: INT, c: char| -> Res<()> {
                pad_string(&ctx, s, len, &c.to_string())
            },
        )
        .register_fn(
            "pad",
            |ctx: NativeCallContext, s: &mut ImmutableString, len: INT, p: &str| -> Res<()> {
                pad_string(&ctx, s, len, p)
            },
        )
        .register_fn(
            "pad",
            |ctx: NativeCallContext, a: &mut Array, len: INT, item: Dynamic| -> Res<()> {
                let max = ctx.engine().max_array_size();
                let Ok(len) = usize::try_from(len) else {
                    return Ok(());
                };
                if len > max {
                    return Err(too_large("Size of array"));
                }
                if len > a.len() {
                    charge_items(len - a.len())?;
                    a.resize(len, item);
                }
                Ok(())
            },
        );
}

/// Registers text functions whose output can be much larger than their input, checked
/// against the size limit before they build anything and charged by what they build.
fn register_text(engine: &mut Engine) {
    engine
        .register_fn(
            "replace",
            |ctx: NativeCallContext, s: &mut ImmutableString, find: &str, sub: &str| {
                replace(&ctx, s, find, sub)
            },
        )
        .register_fn(
            "replace",
            |ctx: NativeCallContext, s: &mut ImmutableString, find: &str, sub: char| {
                replace(&ctx, s, find, sub.encode_utf8(&mut [0; 4]))
            },
        )
        .register_fn(
            "replace",
            |ctx: NativeCallContext, s: &mut ImmutableString, find: char, sub: &str| {
                replace(&ctx, s, find.encode_utf8(&mut [0; 4]), sub)
            },
        )
        .register_fn(
            "replace",
            |ctx: NativeCallContext, s: &mut ImmutableString, find: char, sub: char| {
                replace(
                    &ctx,
                    s,
                    find.encode_utf8(&mut [0; 4]),
                    sub.encode_utf8(&mut [0; 4]),
                )
            },
        )
        .register_fn("to_upper", |ctx: NativeCallContext, s: ImmutableString| {
            recase(&ctx, &s, str::to_uppercase)
        })
        .register_fn("to_lower", |ctx: NativeCallContext, s: ImmutableString| {
            recase(&ctx, &s, str::to_lowercase)
        })
        .register_fn(
            "make_upper",
            |ctx: NativeCallContext, s: &mut ImmutableString| -> Res<()> {
                *s = recase(&ctx, s, str::to_uppercase)?;
                Ok(())
            },
        )
        .register_fn(
            "make_lower",
            |ctx: NativeCallContext, s: &mut ImmutableString| -> Res<()> {
                *s = recase(&ctx, s, str::to_lowercase)?;
                Ok(())
            },
        )
        .register_fn(
            "split",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: &str| split(&ctx, s, d),
        )
        .register_fn(
            "split",
            |ctx: NativeCallContext, s: &mut ImmutableString, d: char| {
                split(&ctx, s, d.encode_utf8(&mut [0; 4]))
            },
        );
}

/// `s.replace(find, sub)`, refused before building when the result would pass the string
/// limit (a 16 KiB string of `a` with each `a` replaced by 16 KiB would be 256 MiB).
fn replace(ctx: &NativeCallContext, s: &mut ImmutableString, find: &str, sub: &str) -> Res<()> {
    let max = ctx.engine().max_string_size();
    // An empty pattern matches before every character and at the end.
    let hits = if find.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(find).count()
    };
    charge_bytes(s.len())?;
    if hits == 0 {
        return Ok(());
    }
    let out_len =
        (s.len() - hits.saturating_mul(find.len())).saturating_add(hits.saturating_mul(sub.len()));
    if max > 0 && out_len > max {
        return Err(too_large("Length of string"));
    }
    charge_bytes(out_len)?;
    *s = s.replace(find, sub).into();
    Ok(())
}

/// Case mapping: charged by its input and output (a character may map to three).
fn recase(ctx: &NativeCallContext, s: &str, f: fn(&str) -> String) -> Res<ImmutableString> {
    charge_bytes(s.len())?;
    let out = f(s);
    let max = ctx.engine().max_string_size();
    if max > 0 && out.len() > max {
        return Err(too_large("Length of string"));
    }
    charge_bytes(out.len())?;
    Ok(out.into())
}

/// `s.split(delimiter)`, refused before building when it would make more items than an
/// array may hold (an empty delimiter splits between every character).
fn split(ctx: &NativeCallContext, s: &str, d: &str) -> Res<Array> {
    let max = ctx.engine().max_array_size();
    charge_bytes(s.len())?;
    let items = if d.is_empty() {
        s.chars().count() + 2
    } else {
        s.matches(d).count() + 1
    };
    if max > 0 && items > max {
        return Err(too_large("Size of array"));
    }
    charge_items(items)?;
    Ok(s.split(d)
        .map(|p| Dynamic::from(ImmutableString::from(p)))
        .collect())
}

fn too_large(what: &str) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorDataTooLarge(
        what.to_owned(),
        rhai::Position::NONE,
    ))
}

/// `s.pad(len, padding)`: pads to `len` characters, charged by the bytes it adds.
fn pad_string(ctx: &NativeCallContext, s: &mut ImmutableString, len: INT, p: &str) -> Res<()> {
    let max = ctx.engine().max_string_size();
    let Ok(len) = usize::try_from(len) else {
        return Ok(());
    };
    if len > max {
        return Err(too_large("Length of string"));
    }
    let have = s.chars().count();
    if len <= have || p.is_empty() {
        return Ok(());
    }
    let missing = len - have;
    // Bytes added: whole copies of the padding, then a part of it.
    let per = p.chars().count();
    let whole = missing / per;
    let part: usize = p.chars().take(missing % per).map(char::len_utf8).sum();
    let added = whole.saturating_mul(p.len()).saturating_add(part);
    if s.len().saturating_add(added) > max {
        return Err(too_large("Length of string"));
    }
    charge_bytes(added)?;
    // Built as a `String`: rhai's string type reallocates on every push (quadratic).
    let mut out = String::with_capacity(s.len() + added);
    out.push_str(s);
    // `repeat` copies in doubling blocks, not one short copy per repetition.
    out.push_str(&p.repeat(whole));
    out.extend(p.chars().take(missing % per));
    *s = out.into();
    Ok(())
}
