//! Static checks beyond the parser: calls to functions that do not exist, references to
//! parameters that are not declared, and reads of keys a map literal never set, with "did you
//! mean" suggestions.
//!
//! `kmsctl run` applies the certain checks (qualified calls into known modules, `param::`);
//! `kmsctl check` also flags unqualified calls and methods no module defines.

mod maps;
mod options;

use crate::diagnostics::CompileError;
use crate::modules::DeclaredOptions;
use crate::program::{ImportTarget, Program};
use rhai::{ASTNode, Engine, Expr, Module, Shared};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// How much to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// Only what is certainly wrong.
    Run,
    /// Everything (`kmsctl check`).
    Check,
}

/// Functions known by name, with the argument counts they accept.
#[derive(Default)]
struct Known(HashMap<String, BTreeSet<usize>>);

impl Known {
    fn add(&mut self, name: &str, arity: usize) {
        self.0.entry(name.to_string()).or_default().insert(arity);
    }
    fn add_signature(&mut self, sig: &str) {
        if let Some((name, arity)) = parse_signature(sig) {
            self.add(name, arity);
        }
    }
    fn has(&self, name: &str, arity: usize) -> bool {
        self.0.get(name).is_some_and(|a| a.contains(&arity))
    }
    fn arities(&self, name: &str) -> Option<&BTreeSet<usize>> {
        self.0.get(name)
    }
    fn suggest(&self, name: &str) -> Option<String> {
        crate::suggest::suggest(name, self.0.keys().map(String::as_str)).map(str::to_string)
    }
}

/// `name(a: int, b: string) -> x` → ("name", 2).
fn parse_signature(sig: &str) -> Option<(&str, usize)> {
    let open = sig.find('(')?;
    let name = sig[..open].trim();
    let name = name.rsplit(' ').next().unwrap_or(name);
    let (mut depth, mut count, mut any) = (0, 0, false);
    for c in sig[open + 1..].chars() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' if depth == 0 => break,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => count += 1,
            c if !c.is_whitespace() => any = true,
            _ => {}
        }
    }
    Some((name, if any { count + 1 } else { 0 }))
}

fn module_fns(m: &Module) -> Known {
    let mut k = Known::default();
    for sig in m.gen_fn_signatures_with_mapper(|s| s.into()) {
        k.add_signature(&sig);
    }
    k
}

/// Keyword functions Rhai provides without registration.
const KEYWORDS: &[(&str, &[usize])] = &[
    ("print", &[0, 1]),
    ("debug", &[0, 1]),
    ("type_of", &[1]),
    ("Fn", &[1]),
    ("call", &[1, 2, 3, 4, 5, 6, 7, 8]),
    ("curry", &[1, 2, 3, 4, 5, 6, 7, 8]),
    ("is_def_var", &[1]),
    ("is_def_fn", &[2, 3]),
    ("is_shared", &[1]),
    ("eval", &[1]),
];

/// Lint a compiled program. `declared` are the entry's declared parameter names, when known.
pub(crate) fn lint(
    engine: &Engine,
    program: &Program,
    native_modules: &HashMap<String, Shared<Module>>,
    native_options: &HashMap<String, BTreeMap<String, DeclaredOptions>>,
    strictness: Strictness,
    declared: Option<&[String]>,
) -> Vec<CompileError> {
    Linter::new(engine, native_modules, native_options).lint(program, strictness, declared, &Default::default())
}

/// What the lint knows of the engine, built once for every program `kmsctl check` lints.
pub(crate) struct Linter<'a> {
    /// Everything callable without a namespace: the engine's functions, keyword functions, and
    /// global (method) functions of native modules.
    global: Known,
    native_known: HashMap<&'a str, Known>,
    native_options: &'a HashMap<String, BTreeMap<String, DeclaredOptions>>,
}

impl<'a> Linter<'a> {
    pub(crate) fn new(
        engine: &Engine,
        native_modules: &'a HashMap<String, Shared<Module>>,
        native_options: &'a HashMap<String, BTreeMap<String, DeclaredOptions>>,
    ) -> Self {
        let mut global = Known::default();
        for sig in engine.gen_fn_signatures(true) {
            global.add_signature(&sig);
        }
        for (name, arities) in KEYWORDS {
            for a in *arities {
                global.add(name, *a);
            }
        }
        let native_known: HashMap<&str, Known> =
            native_modules.iter().map(|(n, m)| (n.as_str(), module_fns(m))).collect();
        for k in native_known.values() {
            for (name, arities) in &k.0 {
                for a in arities {
                    global.add(name, *a);
                }
            }
        }
        Self { global, native_known, native_options }
    }

    /// Lint `program`'s units, skipping the stdlib units in `done` (linted with an earlier
    /// program: a module's findings do not depend on who imports it) and adding its own.
    pub(crate) fn lint(
        &self,
        program: &Program,
        strictness: Strictness,
        declared: Option<&[String]>,
        done: &std::sync::Mutex<HashSet<String>>,
    ) -> Vec<CompileError> {
        let (global, native_known, native_options) = (&self.global, &self.native_known, self.native_options);
        let mut errors = Vec::new();
        for unit in program.units.values() {
            if unit.stdlib && !done.lock().expect("linted units").insert(unit.name.clone()) {
                continue;
            }
            errors.extend(maps::unknown_key_reads(unit));
            let mut local = Known::default();
            for f in unit.ast.iter_functions() {
                local.add(f.name, f.params.len());
            }
            let aliases: HashMap<&str, &ImportTarget> =
                unit.imports.iter().filter_map(|i| i.alias.as_deref().map(|a| (a, &i.target))).collect();
            let unit_known = |target: &str| -> Known {
                let mut k = Known::default();
                if let Some(u) = program.units.get(target) {
                    for f in u.ast.iter_functions().filter(|f| f.access != rhai::FnAccess::Private) {
                        k.add(f.name, f.params.len());
                    }
                }
                k
            };
            let mut push = |pos: rhai::Position, message: String, help: Option<String>| {
                errors.push(CompileError::Lint { source_name: unit.name.clone(), pos, message, help });
            };
            unit.ast.walk(&mut |path: &[ASTNode]| {
                // Calls appear as expressions or, at statement level, as `Stmt::FnCall`.
                let node = match path.last() {
                    Some(ASTNode::Stmt(rhai::Stmt::FnCall(x, pos))) => Some(Call::Fn(x, *pos)),
                    Some(ASTNode::Expr(Expr::FnCall(x, pos))) => Some(Call::Fn(x, *pos)),
                    Some(ASTNode::Expr(Expr::MethodCall(x, pos))) => Some(Call::Method(x, *pos)),
                    Some(ASTNode::Expr(Expr::Variable(x, _, pos))) if !x.2.is_empty() && x.2.root() == "param" => {
                        Some(Call::Param(x.1.as_str(), *pos))
                    }
                    _ => None,
                };
                // Options maps: a qualified call's are certain, a method's or a global's only as
                // certain as the name (`kmsctl check`).
                let options_of = |x: &rhai::FnCallExpr| -> Option<(String, Vec<&str>)> {
                    let n = x.args.len();
                    if x.is_qualified() {
                        let Some(ImportTarget::Native(m)) = aliases.get(x.namespace.root()) else { return None };
                        let d = native_options.get(m.as_str())?.get(x.name.as_str())?;
                        return (!d.method && d.arity == n)
                            .then(|| (format!("{}::{}", x.namespace.root(), x.name), d.keys.clone()));
                    }
                    if strictness != Strictness::Check || local.has(&x.name, n) {
                        return None;
                    }
                    if matches!((x.name.as_str(), n), ("parallel", 2) | ("parallel_map", 3)) {
                        return Some((x.name.to_string(), crate::parallel::OPTIONS.to_vec()));
                    }
                    None
                };
                let method_options_of = |x: &rhai::FnCallExpr| -> Option<(String, Vec<&str>)> {
                    let n = x.args.len();
                    if strictness != Strictness::Check || local.has(&x.name, n) {
                        return None;
                    }
                    let decls: Vec<&DeclaredOptions> = native_options
                        .values()
                        .filter_map(|m| m.get(x.name.as_str()))
                        .filter(|d| d.method && d.arity == n + 1)
                        .collect();
                    let mut keys: Vec<&str> = Vec::new();
                    for k in decls.iter().flat_map(|d| d.keys.iter().copied()) {
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                    (!decls.is_empty()).then(|| (format!(".{}()", x.name), keys))
                };
                let found = match &node {
                    Some(Call::Fn(x, pos)) => options_of(x).map(|(f, k)| (x, *pos, f, k)),
                    Some(Call::Method(x, pos)) => method_options_of(x).map(|(f, k)| (x, *pos, f, k)),
                    _ => None,
                };
                if let Some((x, pos, func, keys)) = found {
                    for f in options::unknown_keys(x.args.last(), &keys, &func, pos) {
                        push(f.pos, f.message, Some(f.help));
                    }
                }
                match node {
                    Some(Call::Fn(x, pos)) if x.is_qualified() => {
                        let root = x.namespace.root();
                        let arity = x.args.len();
                        let (label, known) = match aliases.get(root) {
                            Some(ImportTarget::Native(n)) => {
                                (n.clone(), native_known.get(n.as_str()).map(|k| Known(k.0.clone())))
                            }
                            Some(ImportTarget::Unit(u)) => (u.clone(), Some(unit_known(u))),
                            None => (String::new(), None),
                        };
                        if let Some(known) = known
                            && !known.has(&x.name, arity)
                        {
                            let (msg, help) = match known.arities(&x.name) {
                                Some(a) => {
                                    (format!("{root}::{}() takes {} argument(s), not {arity}", x.name, join(a)), None)
                                }
                                None => (
                                    format!("{root}::{}() does not exist in {label}", x.name),
                                    known.suggest(&x.name).map(|s| format!("did you mean {root}::{s}()?")),
                                ),
                            };
                            push(pos, msg, help);
                        }
                    }
                    Some(Call::Fn(x, pos))
                        if strictness == Strictness::Check
                            && !x.is_operator_call()
                            && rhai::is_valid_identifier(&x.name) =>
                    {
                        let arity = x.args.len();
                        if !local.has(&x.name, arity) && !global.has(&x.name, arity) && !x.name.starts_with("anon$") {
                            let help = local
                                .suggest(&x.name)
                                .or_else(|| global.suggest(&x.name))
                                .map(|s| format!("did you mean {s}()?"));
                            let msg = match local.arities(&x.name).or_else(|| global.arities(&x.name)) {
                                Some(a) => {
                                    format!("{}() takes {} argument(s), not {arity}", x.name, join(a))
                                }
                                None => format!("unknown function {}()", x.name),
                            };
                            push(pos, msg, help);
                        }
                    }
                    Some(Call::Method(x, pos)) if strictness == Strictness::Check => {
                        // A native method takes the object as its first argument; a script function
                        // called as a method binds it to `this` instead.
                        let n = x.args.len();
                        if local.has(&x.name, n) && global.has(&x.name, n + 1) {
                            push(
                                pos,
                                format!(
                                    ".{}() calls this file's fn {}(), not the native method of the same name",
                                    x.name, x.name
                                ),
                                Some(format!(
                                    "rename fn {}() (Rhai prefers script functions for method calls)",
                                    x.name
                                )),
                            );
                        } else if !local.has(&x.name, n) && !global.has(&x.name, n + 1) {
                            match global.arities(&x.name) {
                                Some(a) => {
                                    let takes: BTreeSet<usize> = a.iter().filter(|k| **k > 0).map(|k| k - 1).collect();
                                    push(
                                        pos,
                                        format!(".{}() takes {} argument(s), not {n}", x.name, join(&takes)),
                                        None,
                                    );
                                }
                                None if local.arities(&x.name).is_none() => {
                                    let help = global.suggest(&x.name).map(|s| format!("did you mean .{s}()?"));
                                    push(pos, format!("unknown method .{}()", x.name), help);
                                }
                                None => {}
                            }
                        }
                    }
                    Some(Call::Param(name, pos)) => {
                        if let Some(declared) = declared
                            && name != "all"
                            && !declared.iter().any(|d| d == name)
                        {
                            let help = crate::suggest::suggest(name, declared.iter().map(String::as_str))
                                .map(|s| format!("did you mean param::{s}?"))
                                .unwrap_or_else(|| "declare it in params()".into());
                            push(pos, format!("param::{name} is not a declared parameter"), Some(help));
                        }
                    }
                    _ => {}
                }
                true
            });
        }
        errors
    }
}

enum Call<'a> {
    Fn(&'a rhai::FnCallExpr, rhai::Position),
    Method(&'a rhai::FnCallExpr, rhai::Position),
    Param(&'a str, rhai::Position),
}

fn join(a: &BTreeSet<usize>) -> String {
    a.iter().map(usize::to_string).collect::<Vec<_>>().join(" or ")
}

#[cfg(test)]
mod tests {
    use super::parse_signature;

    #[test]
    fn signatures_parse_into_name_and_arity() {
        assert_eq!(parse_signature("parallel(tasks: array|map, options: map) -> array|map"), Some(("parallel", 2)));
        assert_eq!(parse_signature("now() -> string"), Some(("now", 0)));
        assert_eq!(parse_signature("get(value: any, path: string) -> any"), Some(("get", 2)));
        assert_eq!(parse_signature("fn map(array: Array, mapper: FnPtr) -> Array"), Some(("map", 2)));
    }
}
