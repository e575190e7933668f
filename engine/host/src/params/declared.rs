//! The playbook's own parameter functions: `params()` declares them (run once per run, before
//! the lint, which checks `param::` references against the result), and an optional
//! `validate(p)` checks combinations once they are resolved (before anything runs).

use super::args::RawArg;
use super::{ParamError, ParamSpec};
use crate::diagnostics::CompileError;
use crate::program::Program;
use rhai::{CallFnOptions, Dynamic, Engine, Scope};

/// The parameters a program declares in `params()`.
pub(crate) fn declared(engine: &Engine, program: &Program) -> Result<Vec<ParamSpec>, Vec<CompileError>> {
    let unit = program.entry_unit();
    let Some(f) = unit.ast.iter_functions().find(|f| f.name == "params") else {
        return Ok(Vec::new());
    };
    let err = |message: String| vec![CompileError::Params { source_name: unit.name.clone(), message }];
    if !f.params.is_empty() {
        return Err(err("params() must take no arguments".into()));
    }
    let decl: Dynamic = engine
        .call_fn_with_options(CallFnOptions::new().eval_ast(false), &mut Scope::new(), &unit.ast, "params", ())
        .map_err(|e| err(format!("params() failed: {}", crate::error::short_message(&e))))?;
    super::parse_specs(&decl).map_err(|errs| errs.into_iter().flat_map(|e| err(e.message)).collect())
}

/// Call the playbook's `validate(p)`, if it has one, with `param::all`. What it throws is a
/// parameter error: nothing runs. A thrown map may name the parameter at fault
/// (`#{ param: "enable_tls", message: "..", hint: ".." }`) so the report points at it on the
/// command line.
pub(crate) fn validate(
    engine: &Engine,
    program: &Program,
    specs: &[ParamSpec],
    args: &[String],
    all: rhai::Map,
) -> Result<(), ParamError> {
    let unit = program.entry_unit();
    if !unit.ast.iter_functions().any(|f| f.name == "validate" && f.params.len() == 1) {
        return Ok(());
    }
    let thrown = match engine.call_fn_with_options::<Dynamic>(
        CallFnOptions::new().eval_ast(false),
        &mut Scope::new(),
        &unit.ast,
        "validate",
        (all,),
    ) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let mut inner: &rhai::EvalAltResult = &thrown;
    while let rhai::EvalAltResult::ErrorInFunctionCall(_, _, e, _) | rhai::EvalAltResult::ErrorInModule(_, e, _) = inner
    {
        inner = e;
    }
    let (message, param, hint) = match inner {
        rhai::EvalAltResult::ErrorRuntime(v, _) => match v.read_lock::<rhai::Map>() {
            Some(m) => (
                m.get("message").map(crate::value::display).unwrap_or_else(|| crate::value::display(v)),
                m.get("param").map(crate::value::display),
                m.get("hint").map(crate::value::display),
            ),
            None => (crate::value::display(v), None, None),
        },
        other => (format!("validate() failed: {}", crate::error::short_message(other)), None, None),
    };
    let (parsed, _) = super::parse_args(args, Some(specs));
    let arg = param.as_deref().and_then(|p| parsed.params.iter().rev().find(|r: &&RawArg| r.name == p).map(|r| r.arg));
    Err(ParamError { message, arg, help: hint })
}
