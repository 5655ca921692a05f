//! The sandboxed rhai engine: what a policy may call, and how far it may go.

use rhai::module_resolvers::DummyModuleResolver;
use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage, BasicMapPackage,
    BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, Module, OptimizationLevel, Position};

use super::{
    MAX_ARRAY_SIZE, MAX_CALL_LEVELS, MAX_DATA_CHECK_STEPS, MAX_DATA_DEPTH, MAX_EXPR_DEPTH,
    MAX_FUNCTIONS, MAX_FUNCTION_EXPR_DEPTH, MAX_MAP_SIZE, MAX_OPERATIONS, MAX_STRING_SIZE,
    MAX_VARIABLES,
};

/// Builds the engine every policy of a set runs in.
///
/// Starts from [`Engine::new_raw`] (no functions at all) and adds only pure packages: no
/// `LanguageCorePackage` (it has `sleep`), no `BasicTimePackage` (it reads the clock), no
/// blobs, and not rhai's math package: [`super::math`] registers the number functions that
/// cannot panic in its place. There is no module resolver, `eval` and `import` are disabled, and `print` /
/// `debug` go nowhere. Every limit is set here, to the same value in every build.
///
/// Closures (`|x| ...`) and `this` are disabled too:
/// * a closure that captures a variable makes it a shared value, and under rhai's `sync`
///   feature a conflicting access to a shared value waits 50 ms of wall-clock time (and
///   `std::thread::sleep` panics on wasm32) before failing, with an error a script can catch
///   and repeat. Named functions (`Fn("name")`) still work with `filter`, `map`, `some`, ...
/// * rhai checks the size of a value written into an array element or map entry, but not
///   the size of the container that grows. [`check_variable`] closes that gap for variables;
///   `this` would be a way around it.
pub(crate) fn engine() -> Engine {
    let mut engine = Engine::new_raw();

    // One module holding every package's functions, registered up front. rhai's packages
    // look their functions up lazily, by scanning and hashing their manifests, and each call
    // starts with an empty resolution cache: resolving eagerly, in one module, makes calls
    // several times faster.
    let mut lib = Module::new();
    for package in [
        ArithmeticPackage::new().as_shared_module(),
        LogicPackage::new().as_shared_module(),
        BasicStringPackage::new().as_shared_module(),
        MoreStringPackage::new().as_shared_module(),
        BasicIteratorPackage::new().as_shared_module(),
        BasicFnPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
    ] {
        lib.combine_flatten(Arc::unwrap_or_clone(package));
    }
    lib.register_lazy_functions();
    lib.build_index();
    engine.register_global_module(Arc::new(lib));

    engine
        .disable_symbol("eval")
        .disable_symbol("import")
        .disable_symbol("export")
        .disable_symbol("this")
        .set_allow_anonymous_fn(false)
        .set_module_resolver(DummyModuleResolver::new())
        .on_print(|_| {})
        .on_debug(|_, _, _| {})
        .set_optimization_level(OptimizationLevel::Simple)
        .set_strict_variables(true);

    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FUNCTION_EXPR_DEPTH)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        .set_max_variables(MAX_VARIABLES)
        .set_max_functions(MAX_FUNCTIONS)
        .set_max_modules(0);

    // The only unstable rhai API used here: a hook on every variable access.
    #[allow(deprecated)]
    engine.on_var(|name, _, ctx| check_variable(ctx.scope().get(name)).map(|()| None));

    super::math::register(&mut engine);
    super::cost::register(&mut engine);
    super::time::register(&mut engine);
    super::script::register(&mut engine);
    engine
}

fn too_large(what: &str) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorDataTooLarge(
        what.to_owned(),
        Position::NONE,
    ))
}

#[derive(Default)]
struct Tally {
    items: usize,
    entries: usize,
    bytes: usize,
}

/// Checks the whole size of a variable's value each time the script reads it.
///
/// rhai checks each value written into an element or entry (`m[k] = v`), but not the
/// container, so a loop could grow a map or an array of arrays far past the limits (hundreds
/// of MB within the operations limit). Every such loop reads the container's variable, so
/// checking on read bounds the growth to one write past the limits. The walk stops at the
/// first limit exceeded, so it costs at most about `MAX_ARRAY_SIZE + MAX_MAP_SIZE` steps.
///
/// Each item and entry walked counts against [`MAX_DATA_CHECK_STEPS`] for the call, so a
/// script that reads a large array in a tight loop fails early instead of running about
/// 1,000 times slower than the operations limit suggests.
fn check_variable(value: Option<&Dynamic>) -> Result<(), Box<EvalAltResult>> {
    if let Some(s) = value.filter(|v| v.is_string()) {
        // Whatever a builtin then does with the text costs about its length.
        return super::cost::charge_read(s.as_immutable_string_ref().map_or(0, |s| s.len()), 0);
    }
    let Some(v) = value.filter(|v| v.is_array() || v.is_map()) else {
        return Ok(());
    };
    let mut t = Tally::default();
    let sized = tally(v, 0, &mut t);
    let steps = (t.items + t.entries) as u64;
    // What a builtin then does with the container costs about its size.
    super::cost::charge_read(t.bytes, t.items + t.entries)?;
    let within = super::script::with_collector(|c| {
        c.check_steps = c.check_steps.saturating_add(steps);
        c.check_steps <= MAX_DATA_CHECK_STEPS
    });
    sized?;
    if within == Some(false) {
        return Err(too_large("Data checks"));
    }
    Ok(())
}

fn tally(v: &Dynamic, depth: usize, t: &mut Tally) -> Result<(), Box<EvalAltResult>> {
    if depth >= MAX_DATA_DEPTH {
        return Err(too_large("Depth of data"));
    }
    if let Ok(arr) = v.as_array_ref() {
        t.items += arr.len();
        if t.items > MAX_ARRAY_SIZE {
            return Err(too_large("Size of array"));
        }
        for x in arr.iter() {
            item(x, depth, t)?;
        }
    } else if let Ok(map) = v.as_map_ref() {
        t.entries += map.len();
        if t.entries > MAX_MAP_SIZE {
            return Err(too_large("Size of object map"));
        }
        for (k, x) in map.iter() {
            t.bytes += k.len();
            item(x, depth, t)?;
        }
    }
    if t.bytes > MAX_STRING_SIZE {
        return Err(too_large("Length of string"));
    }
    Ok(())
}

fn item(x: &Dynamic, depth: usize, t: &mut Tally) -> Result<(), Box<EvalAltResult>> {
    if x.is_array() || x.is_map() {
        tally(x, depth + 1, t)
    } else {
        if x.is_string() {
            t.bytes += x.as_immutable_string_ref().map_or(0, |s| s.len());
        }
        Ok(())
    }
}

/// Says in plain words why a call failed, naming the limit when one was hit.
pub(crate) fn describe(err: &EvalAltResult) -> String {
    // Errors inside nested calls are wrapped once per level; the innermost one is the cause.
    let mut root = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = root {
        root = inner;
    }
    let what = match root {
        EvalAltResult::ErrorTerminated(..) | EvalAltResult::ErrorTooManyOperations(_) => {
            format!(
                "it ran more than {MAX_OPERATIONS} operations on one record (limit MAX_OPERATIONS)"
            )
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            format!(
                "it nested function calls more than {MAX_CALL_LEVELS} deep (limit MAX_CALL_LEVELS)"
            )
        }
        EvalAltResult::ErrorTooManyVariables(_) => {
            format!("it had more than {MAX_VARIABLES} variables at once (limit MAX_VARIABLES)")
        }
        EvalAltResult::ErrorDataTooLarge(kind, _) => {
            let kind = kind.to_ascii_lowercase();
            if kind.contains("checks") {
                format!(
                    "it read large arrays or maps so often that checking their size took more than {MAX_DATA_CHECK_STEPS} steps (limit MAX_DATA_CHECK_STEPS)"
                )
            } else if kind.contains("depth") {
                format!("it nested arrays or maps more than {MAX_DATA_DEPTH} deep (limit MAX_DATA_DEPTH)")
            } else if kind.contains("string") {
                format!("it built a string, or strings in one array or map, longer than {MAX_STRING_SIZE} bytes (limit MAX_STRING_SIZE)")
            } else if kind.contains("array") {
                format!("it built an array of more than {MAX_ARRAY_SIZE} items, nested ones included (limit MAX_ARRAY_SIZE)")
            } else if kind.contains("map") {
                format!("it built a map of more than {MAX_MAP_SIZE} entries, nested ones included (limit MAX_MAP_SIZE)")
            } else {
                format!("{kind} too large")
            }
        }
        EvalAltResult::ErrorTooManyModules(_) | EvalAltResult::ErrorModuleNotFound(..) => {
            "policies cannot import modules".to_owned()
        }
        EvalAltResult::ErrorRuntime(value, _) => match value.clone().into_immutable_string() {
            Ok(s) => s.to_string(),
            Err(_) => format!("it threw {value}"),
        },
        other => strip_position(&other.to_string()),
    };
    match line_of(root.position()).or_else(|| line_of(err.position())) {
        Some(line) => format!("{what} (line {line})"),
        None => what,
    }
}

fn line_of(pos: Position) -> Option<usize> {
    pos.line()
}

/// rhai's messages end with ` (line L, position C)`; the line is reported separately.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" (line ") {
        Some(i) => msg.get(..i).unwrap_or(msg).to_owned(),
        None => msg.to_owned(),
    }
}
