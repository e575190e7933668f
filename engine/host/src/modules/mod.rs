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
use rhai::{
    FnNamespace, FuncRegistration, Module, NativeCallContext, Position, RhaiFunc, RhaiNativeFunc, Shared, Variant,
};

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

/// Builds a [`BuiltModule`] with documented functions and methods.
pub struct ModuleBuilder {
    module: Module,
    methods: Module,
}

impl ModuleBuilder {
    /// A module with a doc comment.
    pub fn new(doc: &str) -> Self {
        let mut module = Module::new();
        module.set_doc(doc_comment(doc));
        Self { module, methods: Module::new() }
    }

    /// Add a function callable as `module::name(..)`. `params` are `"name: type"` strings with
    /// the return type last; `doc` is plain text (first line is the summary).
    pub fn func<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        name: &str,
        params: &[&str],
        doc: &str,
        f: FUNC,
    ) -> &mut Self
    where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        FuncRegistration::new(name)
            .with_namespace(FnNamespace::Internal)
            .with_params_info(params)
            .with_comments([doc_comment(doc)])
            .set_into_module_raw(
                &mut self.module,
                FUNC::param_types(),
                with_call_site(f.into_rhai_function(false, true)),
            );
        self
    }

    /// Add a method on a custom type (global: `x.name()` works wherever `x` goes).
    pub fn method<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        name: &str,
        params: &[&str],
        doc: &str,
        f: FUNC,
    ) -> &mut Self
    where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        FuncRegistration::new(name)
            .with_namespace(FnNamespace::Global)
            .with_params_info(params)
            .with_comments([doc_comment(doc)])
            .set_into_module_raw(
                &mut self.methods,
                FUNC::param_types(),
                with_call_site(f.into_rhai_function(true, true)),
            );
        self
    }

    /// Register a custom type name (also used in error messages: `Cluster`, not the Rust path).
    pub fn ty<T: Variant + Clone>(&mut self, name: &'static str) -> &mut Self {
        self.module.set_custom_type::<T>(name);
        TYPE_NAMES.lock().expect("type names").insert(std::any::type_name::<T>(), name);
        self
    }

    /// The module.
    pub fn build(self) -> BuiltModule {
        BuiltModule { functions: self.module, methods: self.methods }
    }
}

/// Rhai leaves errors of qualified native calls (`k8s::apply(..)`) without a position; fill in
/// the call site so diagnostics point at the line that called the native function.
fn with_call_site(f: RhaiFunc) -> RhaiFunc {
    type FnAny = dyn Fn(Option<NativeCallContext>, &mut [&mut rhai::Dynamic]) -> Result<rhai::Dynamic, Box<rhai::EvalAltResult>>
        + Send
        + Sync;
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
