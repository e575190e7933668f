//! Running a playbook's `params()` function to get its declarations. Done once per run, before
//! the lint (which checks `param::` references against the result) and the run itself.

use super::ParamSpec;
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
