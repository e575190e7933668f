//! Native modules scripts import (`import "wait" as wait;`), and the helper that builds them.
//!
//! Each module is a thin adapter: argument conversion and documentation here, the work in plain
//! Rust (often on [`HostCtx`]) that is testable without Rhai.

pub(crate) mod data;
pub(crate) mod env;
pub(crate) mod fs;
pub(crate) mod log;
pub(crate) mod opts;
pub(crate) mod time;
pub(crate) mod wait;

use crate::ctx::HostCtx;
use crate::plan::{Effect, PlannedOp};
use rhai::{
    FnNamespace, FuncRegistration, Module, NativeCallContext, Position, RhaiFunc, RhaiNativeFunc, Shared, Variant,
};
use std::collections::BTreeMap;

/// A module of native functions, built per run.
pub trait NativeModule: Send + Sync {
    /// The import name: `import "<name>" as x;`.
    fn name(&self) -> &'static str;
    /// Build the module for a run.
    fn build(&self, ctx: &HostCtx) -> BuiltModule;
}

/// A native module built for a run: the functions scripts call through the import
/// (`k8s::connect()`), and the methods of its types (`kc.apply(..)`), which the engine registers
/// globally so they work on a value however a script got it (from `aws::eks_connect`, a stdlib
/// function, a parameter) — with or without importing the module that defines them.
pub struct BuiltModule {
    /// `module::function(..)`: reachable through `import`.
    pub functions: Module,
    /// `value.method(..)`: global.
    pub methods: Module,
    /// The declared effect of every function and method, by name (overloads share one).
    pub effects: BTreeMap<String, Effect>,
    /// The keys of the options map each function or method accepts, by name, when it takes one
    /// (`kc.apply(m, #{ namespace: "x" })`): the API docs list them and `kmsctl check` flags
    /// any other key in a map literal given there.
    pub options: BTreeMap<String, DeclaredOptions>,
}

/// The options map a function or method takes: its keys, and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredOptions {
    /// The keys it accepts.
    pub keys: Vec<&'static str>,
    /// The argument count of the form that takes it (last), the value a method is called on
    /// included.
    pub arity: usize,
    /// Called as a method (`kc.apply(..)`) rather than `module::f(..)`.
    pub method: bool,
}

/// The modules this crate provides.
pub(crate) fn core_modules() -> Vec<Box<dyn NativeModule>> {
    vec![
        Box::new(log::Log),
        Box::new(wait::Wait),
        Box::new(data::Data),
        Box::new(fs::Fs),
        Box::new(env::Env),
        Box::new(time::Time),
    ]
}

/// Display names of native custom types, by Rust type name. Rhai names types in errors from
/// global modules only, and native modules come through the import resolver.
static TYPE_NAMES: std::sync::Mutex<std::collections::BTreeMap<&'static str, &'static str>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A module holding only the display names of every native custom type registered so far.
pub(crate) fn type_names_module() -> Module {
    let mut m = Module::new();
    for (rust, display) in TYPE_NAMES.lock().expect("type names").iter() {
        m.set_custom_type_raw(*rust, *display);
    }
    m
}

/// Builds a [`BuiltModule`] with documented functions and methods, each with its declared
/// [`Effect`].
pub struct ModuleBuilder {
    module: Module,
    methods: Module,
    effects: BTreeMap<String, Effect>,
    options: BTreeMap<String, DeclaredOptions>,
    ctx: HostCtx,
    name: &'static str,
}

/// A function or method waiting for its effect: `.reads()`, `.mutates()` or `.plans()`
/// registers it. Dropping it registers nothing, so a function cannot exist without one.
#[must_use = "declare the function's effect: .reads(), .mutates() or .plans()"]
pub struct Declare<'a> {
    b: &'a mut ModuleBuilder,
    name: String,
    params: Vec<String>,
    doc: String,
    types: Box<[std::any::TypeId]>,
    func: RhaiFunc,
    method: bool,
    options: Option<Vec<&'static str>>,
}

impl Declare<'_> {
    /// The keys its options map (its last parameter) accepts: the same list its body gives
    /// [`Opts::new`](opts::Opts::new), so the docs and `kmsctl check` cannot drift from it.
    pub fn options(mut self, keys: &[&'static str]) -> Self {
        self.options = Some(keys.to_vec());
        self
    }

    /// It computes or reads: it runs as usual in plan mode.
    pub fn reads(self) {
        self.register(Effect::Reads)
    }

    /// It changes something outside the run: in plan mode it is recorded, not called.
    pub fn mutates(self) {
        self.register(Effect::Mutates)
    }

    /// It changes something outside the run and plans itself: in plan mode it is called and
    /// must record its operations through [`HostCtx::record`] instead of acting.
    pub fn plans(self) {
        self.register(Effect::Plans)
    }

    fn register(self, effect: Effect) {
        let Declare { b, name, params, mut doc, types, func, method, options } = self;
        let previous = b.effects.insert(name.clone(), effect);
        assert!(
            previous.is_none_or(|p| p == effect),
            "{}::{name}: overloads declare different effects ({previous:?}, {effect:?})",
            b.name
        );
        if let Some(keys) = options {
            let listed: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            doc = format!("{doc}\n///\n/// Options: {}.", listed.join(", "));
            let declared = DeclaredOptions { keys, arity: params.len().saturating_sub(1), method };
            let previous = b.options.insert(name.clone(), declared.clone());
            assert!(
                previous.as_ref().is_none_or(|p| *p == declared),
                "{}::{name}: overloads declare different options ({previous:?}, {declared:?})",
                b.name
            );
        }
        let func = if effect == Effect::Mutates { recorded(func, &b.ctx, b.name, &name, method) } else { func };
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let reg = FuncRegistration::new(name)
            .with_namespace(if method { FnNamespace::Global } else { FnNamespace::Internal })
            .with_params_info(params)
            .with_comments([doc]);
        let target = if method { &mut b.methods } else { &mut b.module };
        reg.set_into_module_raw(target, types, with_call_site(func));
    }
}

impl ModuleBuilder {
    /// A module `name` for the run of `ctx`, with a doc comment.
    pub fn new(ctx: &HostCtx, name: &'static str, doc: &str) -> Self {
        let mut module = Module::new();
        module.set_doc(doc_comment(doc));
        Self {
            module,
            methods: Module::new(),
            effects: BTreeMap::new(),
            options: BTreeMap::new(),
            ctx: ctx.clone(),
            name,
        }
    }

    /// Add a function callable as `module::name(..)`. `params` are `"name: type"` strings with
    /// the return type last; `doc` is plain text (first line is the summary). Registered once
    /// its effect is declared.
    pub fn func<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        name: &str,
        params: &[&str],
        doc: &str,
        f: FUNC,
    ) -> Declare<'_>
    where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        self.declare(name, params, doc, FUNC::param_types(), f.into_rhai_function(false, true), false)
    }

    /// Add a method on a custom type (global: `x.name()` works wherever `x` goes). Registered
    /// once its effect is declared.
    pub fn method<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        name: &str,
        params: &[&str],
        doc: &str,
        f: FUNC,
    ) -> Declare<'_>
    where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        self.declare(name, params, doc, FUNC::param_types(), f.into_rhai_function(true, true), true)
    }

    fn declare(
        &mut self,
        name: &str,
        params: &[&str],
        doc: &str,
        types: impl Into<Box<[std::any::TypeId]>>,
        func: RhaiFunc,
        method: bool,
    ) -> Declare<'_> {
        Declare {
            b: self,
            name: name.to_string(),
            params: params.iter().map(|p| p.to_string()).collect(),
            doc: doc_comment(doc),
            types: types.into(),
            func,
            method,
            options: None,
        }
    }

    /// Register a custom type name (also used in error messages: `Cluster`, not the Rust path).
    pub fn ty<T: Variant + Clone>(&mut self, name: &'static str) -> &mut Self {
        self.module.set_custom_type::<T>(name);
        TYPE_NAMES.lock().expect("type names").insert(std::any::type_name::<T>(), name);
        self
    }

    /// The module.
    pub fn build(self) -> BuiltModule {
        BuiltModule { functions: self.module, methods: self.methods, effects: self.effects, options: self.options }
    }
}

/// A mutating function as plan mode sees it: not called, but recorded with its arguments
/// (secrets masked, long values cut), returning `()`.
fn recorded(f: RhaiFunc, ctx: &HostCtx, module: &'static str, name: &str, method: bool) -> RhaiFunc {
    let (ctx, name) = (ctx.clone(), name.to_string());
    let wrap = move |func: Shared<FnAny>| -> Shared<FnAny> {
        let (ctx, name) = (ctx.clone(), name.clone());
        Shared::new(move |c: Option<NativeCallContext>, args: &mut [&mut rhai::Dynamic]| {
            if !ctx.mode().is_plan() {
                return func(c, args);
            }
            // A method's receiver (a handle) says nothing the call does not.
            let shown: Vec<String> = args.iter().skip(usize::from(method)).map(|a| brief(a)).collect();
            ctx.record(PlannedOp::new(format!("{module} {name}"), shown.join(" ")));
            Ok(rhai::Dynamic::UNIT)
        })
    };
    match f {
        RhaiFunc::Pure { func, has_context, is_pure, is_volatile } => {
            RhaiFunc::Pure { func: wrap(func), has_context, is_pure, is_volatile }
        }
        RhaiFunc::Method { func, has_context, is_pure, is_volatile } => {
            RhaiFunc::Method { func: wrap(func), has_context, is_pure, is_volatile }
        }
        other => other,
    }
}

/// An argument in one line: JSON with secrets masked, paths under the working directory made
/// relative to it, the first line of a text, cut at 80 characters.
fn brief(v: &rhai::Dynamic) -> String {
    let text = match crate::value::to_json(v, crate::value::Reveal::Mask) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(j) => j.to_string(),
        Err(_) => crate::value::display(v),
    };
    let text = match std::env::current_dir() {
        Ok(cwd) => text.strip_prefix(&format!("{}/", cwd.display())).map(str::to_string).unwrap_or(text),
        Err(_) => text,
    };
    let first = text.lines().next().unwrap_or_default();
    if first.chars().count() > 80 || first.len() < text.len() {
        format!("{}…", first.chars().take(80).collect::<String>())
    } else {
        text
    }
}

type FnAny = dyn Fn(Option<NativeCallContext>, &mut [&mut rhai::Dynamic]) -> Result<rhai::Dynamic, Box<rhai::EvalAltResult>>
    + Send
    + Sync;

/// Rhai leaves errors of qualified native calls (`k8s::apply(..)`) without a position; fill in
/// the call site so diagnostics point at the line that called the native function.
fn with_call_site(f: RhaiFunc) -> RhaiFunc {
    let wrap = |func: Shared<FnAny>| -> Shared<FnAny> {
        Shared::new(move |ctx: Option<NativeCallContext>, args: &mut [&mut rhai::Dynamic]| {
            let pos = ctx.as_ref().map(|c| c.call_position()).unwrap_or(Position::NONE);
            func(ctx, args).map_err(|mut e| {
                if e.position().is_none() {
                    e.set_position(pos);
                }
                e
            })
        })
    };
    match f {
        RhaiFunc::Pure { func, is_pure, is_volatile, .. } => {
            RhaiFunc::Pure { func: wrap(func), has_context: true, is_pure, is_volatile }
        }
        RhaiFunc::Method { func, is_pure, is_volatile, .. } => {
            RhaiFunc::Method { func: wrap(func), has_context: true, is_pure, is_volatile }
        }
        other => other,
    }
}

fn doc_comment(text: &str) -> String {
    text.trim()
        .lines()
        .map(|l| if l.is_empty() { "///".to_string() } else { format!("/// {l}") })
        .collect::<Vec<_>>()
        .join("\n")
}
