//! Reads of keys a map literal never had: `let cfg = #{ release_prefix: .. }; cfg.release_prefx`
//! is a certain error, found before anything runs. Only where it can be known: a variable
//! declared once in its function (or at the top level) as a map literal and never assigned to,
//! captured by a closure or given to a method that could change it.

use crate::diagnostics::CompileError;
use crate::program::Unit;
use rhai::{AST, ASTFlags, ASTNode, Expr, Stmt};
use std::collections::{BTreeSet, HashMap};

/// Functions that only read a map: calling them on it (`cfg.keys()`, `print(cfg)`) keeps a
/// literal's keys known. Any other call may change it: Rhai passes a variable given as the
/// first argument by reference (`mixin(cfg, x)` adds keys).
const READ_ONLY: &[&str] = &[
    "keys",
    "values",
    "len",
    "is_empty",
    "contains",
    "get",
    "to_json",
    "to_json_pretty",
    "to_yaml",
    "to_string",
    "to_debug",
    "clone",
    "print",
    "debug",
    "type_of",
];

/// Every such read in `unit`.
pub(super) fn unknown_key_reads(unit: &Unit) -> Vec<CompileError> {
    let mut errors = Vec::new();
    scope(&unit.ast.clone_statements_only(), &[], &unit.name, &mut errors);
    for f in unit.ast.iter_fn_def() {
        // An AST of this function alone (rhai's `clone_functions_only_filtered` keeps them all
        // when it starts empty: every function was walked as every other's scope).
        let mut lib = rhai::Module::new();
        lib.set_script_fn(f.clone());
        let one = AST::new(Vec::new(), lib);
        let params: Vec<String> = f.params.iter().map(|p| p.to_string()).collect();
        scope(&one, &params, &unit.name, &mut errors);
    }
    errors
}

struct Literal {
    keys: BTreeSet<String>,
    line: usize,
    decls: usize,
    changed: bool,
}

/// One function body (or the top level): `params` count as declarations.
fn scope(ast: &AST, params: &[String], source: &str, errors: &mut Vec<CompileError>) {
    let mut vars: HashMap<String, Literal> = HashMap::new();
    let mut other_decls: HashMap<String, usize> = params.iter().map(|p| (p.clone(), 1)).collect();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, _, pos))) => match literal_keys(&x.1) {
                Some(keys) => {
                    let lit = vars.entry(x.0.name.to_string()).or_insert_with(|| Literal {
                        keys,
                        line: pos.line().unwrap_or(0),
                        decls: 0,
                        changed: false,
                    });
                    lit.decls += 1;
                }
                None => *other_decls.entry(x.0.name.to_string()).or_default() += 1,
            },
            Some(ASTNode::Stmt(Stmt::For(x, _))) => {
                *other_decls.entry(x.0.name.to_string()).or_default() += 1;
                if let Some(c) = &x.1 {
                    *other_decls.entry(c.name.to_string()).or_default() += 1;
                }
            }
            Some(ASTNode::Stmt(Stmt::Assignment(x))) => {
                if let Some(root) = root_var(&x.1.lhs)
                    && let Some(lit) = vars.get_mut(root)
                {
                    lit.changed = true;
                }
            }
            Some(ASTNode::Stmt(Stmt::Share(names))) => {
                for (ident, _) in names.iter() {
                    if let Some(lit) = vars.get_mut(ident.name.as_str()) {
                        lit.changed = true;
                    }
                }
            }
            Some(ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _))) => {
                if let Some(root) = call.args.first().and_then(root_var)
                    && !READ_ONLY.contains(&call.name.as_str())
                    && let Some(lit) = vars.get_mut(root)
                {
                    lit.changed = true;
                }
            }
            Some(ASTNode::Expr(Expr::Dot(x, ..))) => {
                if let (Some(root), Expr::MethodCall(call, _)) = (root_var(&x.lhs), &x.rhs)
                    && !READ_ONLY.contains(&call.name.as_str())
                    && let Some(lit) = vars.get_mut(root)
                {
                    lit.changed = true;
                }
            }
            _ => {}
        }
        true
    });
    vars.retain(|name, lit| lit.decls == 1 && !lit.changed && !other_decls.contains_key(name));
    if vars.is_empty() {
        return;
    }
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Dot(x, flags, _))) = path.last()
            && let Expr::Variable(v, _, _) = &x.lhs
            && let Some(lit) = vars.get(v.1.as_str())
            && let Some((prop, pos, optional)) = first_property(&x.rhs)
        {
            // `cfg?.x`, `cfg.x?.y` and anything left of `??` may be missing on purpose.
            let in_coalesce = path.iter().any(|n| matches!(n, ASTNode::Expr(Expr::Coalesce(..))));
            if !flags.intersects(ASTFlags::NEGATED) && !optional && !in_coalesce && !lit.keys.contains(prop) {
                let near = crate::suggest::suggest(prop, lit.keys.iter().map(String::as_str))
                    .map(|k| format!("did you mean {}.{k}? ", v.1))
                    .unwrap_or_default();
                let keys = lit.keys.iter().cloned().collect::<Vec<_>>().join(", ");
                errors.push(CompileError::Lint {
                    source_name: source.to_string(),
                    pos,
                    message: format!("{} has no key '{prop}': the map literal of line {} never sets it", v.1, lit.line),
                    help: Some(format!("{near}its keys: {keys}; read an optional key as {}?.{prop}", v.1)),
                });
            }
        }
        true
    });
}

/// The keys of a map literal (the optimizer turns one of constants into a constant map).
fn literal_keys(e: &Expr) -> Option<BTreeSet<String>> {
    match e {
        Expr::Map(m, _) => Some(m.0.iter().map(|(k, _)| k.name.to_string()).collect()),
        Expr::DynamicConstant(v, _) => v.read_lock::<rhai::Map>().map(|m| m.keys().map(|k| k.to_string()).collect()),
        _ => None,
    }
}

/// The variable at the root of a property chain (`cfg` in `cfg.a.b`, `cfg["x"]`).
fn root_var(e: &Expr) -> Option<&str> {
    match e {
        Expr::Variable(v, _, _) if v.2.is_empty() => Some(v.1.as_str()),
        Expr::Dot(x, ..) | Expr::Index(x, ..) => root_var(&x.lhs),
        _ => None,
    }
}

/// The first property read by the right side of a dot, its position, and whether `?.` follows it.
fn first_property(rhs: &Expr) -> Option<(&str, rhai::Position, bool)> {
    match rhs {
        Expr::Property(p, pos) => Some((p.2.as_str(), *pos, false)),
        Expr::Dot(x, flags, _) | Expr::Index(x, flags, _) => match &x.lhs {
            Expr::Property(p, pos) => Some((p.2.as_str(), *pos, flags.intersects(ASTFlags::NEGATED))),
            _ => None,
        },
        _ => None,
    }
}
