//! Building the Rhai engine for a run: limits, strict variables, secrets, `print`, cancellation,
//! `parallel`, and the native modules.

use crate::ctx::HostCtx;
use crate::events::Level;
use crate::modules::{DeclaredOptions, NativeModule};
use crate::secret::{MASK, Secret};
use crate::task;
use rhai::{Dynamic, Engine, INT, Map, Module, NativeCallContext, Shared};
use std::collections::{BTreeMap, HashMap};

/// Script resource limits. Always set explicitly: Rhai's defaults differ between debug and
/// release builds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Operations per run (each AST node evaluated counts one; native waits cost nothing).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Expression nesting at the top level.
    pub max_expr_depth: usize,
    /// Expression nesting inside functions.
    pub max_fn_expr_depth: usize,
    /// Bytes in one string.
    pub max_string_size: usize,
    /// Items in one array.
    pub max_array_size: usize,
    /// Map entries in one value: Rhai counts the entries of nested maps together, so a list of
    /// 10,000 Kubernetes objects of ~20 fields each holds ~200,000.
    pub max_map_size: usize,
    /// Modules loaded.
    pub max_modules: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 50_000_000,
            max_call_levels: 96,
            max_expr_depth: 128,
            max_fn_expr_depth: 96,
            max_string_size: 64 << 20,
            max_array_size: 1_000_000,
            max_map_size: 5_000_000,
            max_modules: 512,
        }
    }
}

impl Limits {
    fn apply(&self, e: &mut Engine) {
        e.set_max_operations(self.max_operations);
        e.set_max_call_levels(self.max_call_levels);
        e.set_max_expr_depths(self.max_expr_depth, self.max_fn_expr_depth);
        e.set_max_string_size(self.max_string_size);
        e.set_max_array_size(self.max_array_size);
        e.set_max_map_size(self.max_map_size);
        e.set_max_modules(self.max_modules);
    }
}

/// The engine plus the run's native modules (for the resolver).
pub(crate) struct Built {
    /// The engine; `param` is a placeholder until [`set_params`].
    pub engine: Engine,
    /// Native modules by import name.
    pub natives: HashMap<String, Shared<Module>>,
    /// The options maps their functions and methods take, by module and function name.
    pub options: HashMap<String, BTreeMap<String, DeclaredOptions>>,
}

/// Build the engine for `ctx` with `natives`.
pub(crate) fn build(ctx: &HostCtx, limits: &Limits, natives: &[Box<dyn NativeModule>]) -> Built {
    let mut e = Engine::new();
    limits.apply(&mut e);
    e.set_strict_variables(true);
    // A misspelled key must not read as `()`: reads of missing properties fail, except the
    // explicitly optional ones (`?.`, `??`, see vendor/README.md).
    e.set_fail_on_invalid_map_property(true);
    e.on_map_missing_property(|map, prop, _| Err(missing_property(map, prop)));
    e.register_static_module("param", Module::new().into());

    let c = ctx.clone();
    e.on_print(move |s| c.log(Level::Info, s));
    let c = ctx.clone();
    e.on_debug(move |s, src, pos| {
        let at = match (src, pos.line()) {
            (Some(src), Some(l)) => format!("{src}:{l}: "),
            _ => String::new(),
        };
        c.log(Level::Debug, format!("{at}{s}"));
    });
    // Called on every operation: keep it to a thread-local borrow and an atomic load.
    e.on_progress(|_| task::cancelled_scope().map(|s| crate::ctx::termination_value(&s)));

    register_secret(&mut e, ctx);
    let c = ctx.clone();
    rhai::FuncRegistration::new("parallel")
        .with_volatility(true)
        .with_purity(false)
        .with_params_info(["tasks: array|map", "options: map", "array|map"])
        .with_comments([format!(
            "{}{}",
            concat!(
                "/// Run closures concurrently; results come back in order (or by label for a map).\n",
                "/// The first failure cancels the rest and is rethrown. Options: `max` (concurrency),\n",
                "/// `labels` (for an array), `fail_fast` (default true; false runs all and reports every failure).\n",
                "///\n/// ```rhai\n/// let pods = parallel(#{ \"party-1\": || deploy(1), \"party-2\": || deploy(2) }, #{ max: 4 });\n/// ```"
            ),
            options_line()
        )])
        .register_into_engine(&mut e, move |ncc: NativeCallContext, tasks: Dynamic, opts: Map| crate::parallel::parallel(&c, &ncc, tasks, &opts));
    let c = ctx.clone();
    rhai::FuncRegistration::new("parallel")
        .with_volatility(true)
        .with_purity(false)
        .with_params_info(["tasks: array|map", "array|map"])
        .with_comments(["/// Run closures concurrently with default options."])
        .register_into_engine(&mut e, move |ncc: NativeCallContext, tasks: Dynamic| {
            crate::parallel::parallel(&c, &ncc, tasks, &Map::new())
        });

    let c = ctx.clone();
    rhai::FuncRegistration::new("parallel_map")
        .with_volatility(true)
        .with_purity(false)
        .with_params_info(["items: array", "work: Fn", "options: map", "array"])
        .with_comments([format!(
            "{}{}",
            concat!(
                "/// Call `work(item)` for every item concurrently; results come back in order.\n",
                "/// Labels default to the items. Options as for `parallel`.\n",
                "///\n/// ```rhai\n/// let releases = parallel_map([1, 2, 3, 4], |id| deploy_party(id), #{ max: 4 });\n/// ```"
            ),
            options_line()
        )])
        .register_into_engine(&mut e, move |ncc: NativeCallContext, items: rhai::Array, f: rhai::FnPtr, opts: Map| {
            crate::parallel::parallel_map(&c, &ncc, items, f, &opts)
        });
    let c = ctx.clone();
    rhai::FuncRegistration::new("parallel_map")
        .with_volatility(true)
        .with_purity(false)
        .with_params_info(["items: array", "work: Fn", "array"])
        .with_comments(["/// Call `work(item)` for every item concurrently with default options."])
        .register_into_engine(&mut e, move |ncc: NativeCallContext, items: rhai::Array, f: rhai::FnPtr| {
            crate::parallel::parallel_map(&c, &ncc, items, f, &Map::new())
        });

    let mut functions = HashMap::new();
    let mut options = HashMap::new();
    for m in natives {
        let built = m.build(ctx);
        functions.insert(m.name().to_string(), Shared::new(built.functions));
        options.insert(m.name().to_string(), built.options);
        e.register_global_module(built.methods.into());
    }
    e.register_global_module(crate::modules::type_names_module().into());
    Built { engine: e, natives: functions, options }
}

/// The keys `parallel` and `parallel_map` accept, as a doc comment's last paragraph (as
/// [`crate::ModuleBuilder`] writes a native function's).
fn options_line() -> String {
    let keys: Vec<String> = crate::parallel::OPTIONS.iter().map(|k| format!("`{k}`")).collect();
    format!("\n///\n/// Options: {}.", keys.join(", "))
}

/// The error for reading `prop` from a map that lacks it: the property, then (after a newline,
/// for diagnostics to show as help) the closest key and the keys the map has.
fn missing_property(map: &Map, prop: &str) -> Box<rhai::EvalAltResult> {
    let keys: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
    let near = crate::suggest::suggest(prop, keys.iter().copied())
        .map(|k| format!("did you mean '{k}'? "))
        .unwrap_or_default();
    let has = match keys.len() {
        0 => "the map is empty".to_string(),
        n if n <= 12 => format!("it has {}", keys.join(", ")),
        n => format!("it has {} and {} more", keys[..12].join(", "), n - 12),
    };
    let help = format!("{near}{has}; read an optional key as m?.key, m.key ?? default, or check \"key\" in m");
    Box::new(rhai::EvalAltResult::ErrorPropertyNotFound(format!("{prop}\n{help}"), rhai::Position::NONE))
}

fn register_secret(e: &mut Engine, ctx: &HostCtx) {
    e.register_type_with_name::<Secret>("Secret");
    e.register_fn("to_string", |_: &mut Secret| MASK.to_string());
    e.register_fn("to_debug", |_: &mut Secret| MASK.to_string());
    e.register_fn("len", |s: &mut Secret| s.expose().chars().count() as INT);
    e.register_fn("is_empty", |s: &mut Secret| s.expose().is_empty());
    e.register_fn("==", |a: Secret, b: Secret| a == b);
    e.register_fn("!=", |a: Secret, b: Secret| a != b);
    let r = ctx.redactor().clone();
    e.register_fn("+", move |a: Secret, b: &str| r.secret(format!("{}{b}", a.expose())));
    let r = ctx.redactor().clone();
    e.register_fn("+", move |a: &str, b: Secret| r.secret(format!("{a}{}", b.expose())));
    let r = ctx.redactor().clone();
    e.register_fn("+", move |a: Secret, b: Secret| r.secret(format!("{}{}", a.expose(), b.expose())));
    let c = ctx.clone();
    rhai::FuncRegistration::new("secret")
        .with_volatility(true)
        .with_params_info(["value: string", "Secret"])
        .with_comments(["/// Wrap a value as a secret: it prints as *** in every output, log, plan and artifact.\n/// Joining a secret with `+` gives a secret."])
        .register_into_engine(e, move |v: &str| c.secret(v));
    rhai::FuncRegistration::new("is_secret")
        .with_params_info(["value: any", "bool"])
        .with_comments(["/// Is the value a secret?"])
        .register_into_engine(e, |v: Dynamic| v.is::<Secret>());
}

/// Put the resolved parameter values in place of the `param` placeholder: each as
/// `param::name`, and all of them as the map `param::all` (for stdlib functions that take a
/// playbook's whole contract).
pub(crate) fn set_params(e: &mut Engine, values: Vec<(String, Dynamic)>) -> Map {
    let mut m = Module::new();
    let mut all = Map::new();
    for (k, v) in values {
        all.insert(k.as_str().into(), v.clone());
        m.set_var(k, v);
    }
    m.set_var("all", all.clone());
    e.register_static_module("param", m.into());
    all
}

#[cfg(test)]
mod tests {
    //! Map reads are strict except where `()` is asked for: these pin the engine setting and
    //! the patch in vendor/rhai (an upgrade that loses it fails here).
    use super::*;
    use rhai::EvalAltResult;

    fn eval(script: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let (_rt, ctx, _) = crate::ctx::testing::ctx();
        build(&ctx, &Limits::default(), &[]).engine.eval::<Dynamic>(script)
    }

    fn missing(script: &str) -> String {
        match *eval(script).expect_err(script) {
            EvalAltResult::ErrorPropertyNotFound(text, _) => text,
            other => panic!("{script}: not a missing-property error: {other}"),
        }
    }

    #[test]
    fn a_misspelled_key_is_an_error_that_names_the_closest_one() {
        let text = missing(r#"let cfg = #{ namespace: "x", release_prefix: "kms-core" }; `${cfg.release_prefx}-1`"#);
        assert!(text.starts_with("release_prefx\n"), "{text}");
        assert!(text.contains("did you mean 'release_prefix'?"), "{text}");
        assert!(text.contains("it has namespace, release_prefix"), "{text}");
        assert!(missing(r#"let m = #{}; m["k"]"#).contains("the map is empty"));
        assert!(missing("let m = #{ a: #{} }; m.a.b").starts_with("b\n"));
    }

    #[test]
    fn reads_next_to_elvis_are_optional() {
        for script in [
            "let o = #{}; o.status?.phase",
            "let o = #{ status: #{} }; o.status?.phase",
            "let o = #{}; o?.status",
            r#"let m = #{}; m?["k"]"#,
            r#"let m = #{}; m["k"]?.x"#,
        ] {
            assert!(eval(script).expect(script).is_unit(), "{script}");
        }
        // Only the reads next to `?.`: `phase` must exist once `status` does.
        assert!(missing("let o = #{ status: #{ x: 1 } }; o?.status.phase").starts_with("phase\n"));
    }

    #[test]
    fn the_chain_left_of_coalesce_is_optional_but_not_the_calls_it_makes() {
        assert_eq!(eval(r#"let c = #{}; c.timeout ?? "5m""#).unwrap().cast::<String>(), "5m");
        assert_eq!(eval("let m = #{}; m.a.b ?? 3").unwrap().as_int().unwrap(), 3);
        assert_eq!(eval(r#"let m = #{}; m["k"] ?? 4"#).unwrap().as_int().unwrap(), 4);
        assert_eq!(eval("let m = #{ t: 1 }; m.t ?? 2").unwrap().as_int().unwrap(), 1);
        let e = eval("fn f(m) { m.missing } let c = #{}; f(c) ?? 1").expect_err("a read inside a call stays strict");
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn assignments_still_add_properties() {
        assert_eq!(eval("let m = #{}; m.x = 1; m.x").unwrap().as_int().unwrap(), 1);
        assert_eq!(eval(r#"let m = #{}; m["y"] = 2; m.y"#).unwrap().as_int().unwrap(), 2);
        assert_eq!(eval("let m = #{ a: #{} }; m.a.b = 3; m.a.b").unwrap().as_int().unwrap(), 3);
        assert!(!eval(r#"let m = #{ a: 1 }; "b" in m"#).unwrap().as_bool().unwrap());
        assert!(eval(r#"let m = #{ a: 1 }; m.get("b")"#).unwrap().is_unit());
    }
}

/// Bad input (issue #12): any text compiles or is refused with a compile error, never a panic.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "let",
                "fn",
                "if",
                "else",
                "for",
                "in",
                "while",
                "loop",
                "return",
                "throw",
                "try",
                "catch",
                "import",
                "as",
                "export",
                "const",
                "private",
                "{",
                "}",
                "(",
                ")",
                "[",
                "]",
                "#{",
                ",",
                ";",
                ".",
                "::",
                "=",
                "==",
                "+",
                "?",
                "??",
                "|",
                "||",
                "!",
                "`",
                "${",
                "\"",
                "'",
                "//",
                "/*",
                "*/",
                "param::x",
                "global::y",
                "x",
                "42",
                "3.5",
                "true",
                "()",
                "\n",
            ])
            .prop_map(str::to_string),
            "[ -~]{0,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_text_compiles_or_is_refused(tokens in proptest::collection::vec(token(), 0..40)) {
            let (_rt, ctx, _) = crate::ctx::testing::ctx();
            let engine = build(&ctx, &Limits::default(), &[]).engine;
            let _ = engine.compile(tokens.join(" "));
        }
    }
}
