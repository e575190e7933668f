//! A playbook and everything it imports, compiled before anything runs.
//!
//! Imports are resolved statically: `import "k8s"` is a native module, `import "std/x"` is
//! `stdlib/x.rhai` (embedded, or from `--stdlib-dir`), `import "./lib/x"` is a file next to the
//! importing one. Every file is parsed once here; at run time [`ProgramResolver`] serves the
//! compiled ASTs, so a syntax error in a deep module stops the run before it starts.

use crate::diagnostics::CompileError;
pub(crate) use crate::sources::Sources;
use include_dir::{Dir, include_dir};
use rhai::{AST, Engine, EvalAltResult, Module, Position, Scope, Shared};
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

static EMBEDDED_STDLIB: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../stdlib");

/// Where `std/` modules come from.
#[derive(Clone, Debug)]
pub(crate) enum Stdlib {
    /// The copies built into the binary.
    Embedded,
    /// A directory (`--stdlib-dir`), for editing the stdlib without recompiling.
    Dir(PathBuf),
}

impl Stdlib {
    /// The source of `std/<name>`: (display name, text).
    pub(crate) fn load(&self, name: &str) -> Option<(String, String)> {
        let rel = format!("{name}.rhai");
        match self {
            Stdlib::Embedded => EMBEDDED_STDLIB
                .get_file(&rel)
                .and_then(|f| f.contents_utf8())
                .map(|t| (format!("stdlib/{rel}"), t.to_string())),
            Stdlib::Dir(d) => {
                let p = d.join(&rel);
                std::fs::read_to_string(&p).ok().map(|t| (display(&p), t))
            }
        }
    }

    /// Every module name available (`kms`, `wait`, `kms/values`, ...).
    pub(crate) fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self {
            Stdlib::Embedded => collect_embedded(&EMBEDDED_STDLIB, &mut out),
            Stdlib::Dir(d) => collect_dir(d, d, &mut out),
        }
        out.sort();
        out
    }
}

fn collect_embedded(dir: &Dir<'_>, out: &mut Vec<String>) {
    for f in dir.files() {
        if let Some(p) = f.path().to_str().and_then(|p| p.strip_suffix(".rhai")) {
            out.push(p.to_string());
        }
    }
    for d in dir.dirs() {
        collect_embedded(d, out);
    }
}

fn collect_dir(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_dir(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rhai")
            && let Some(rel) = p.strip_prefix(root).ok().and_then(|r| r.with_extension("").to_str().map(str::to_string))
        {
            out.push(rel);
        }
    }
}

/// A path as shown to users: relative to the working directory when under it.
pub(crate) fn display(p: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    let abs = if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    let abs = normalize(&abs);
    abs.strip_prefix(&cwd).map(|r| r.to_path_buf()).unwrap_or(abs).to_string_lossy().into_owned()
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// One compiled file.
#[derive(Clone)]
pub(crate) struct Unit {
    /// Display name (also the AST's source name).
    pub name: String,
    /// Where it lives on disk (`None` for the embedded stdlib).
    pub path: Option<PathBuf>,
    /// The compiled script.
    pub ast: Arc<AST>,
    /// The imports it makes: alias → what it resolves to.
    pub imports: Vec<Import>,
    /// A `std/` module (embedded or from `--stdlib-dir`).
    pub stdlib: bool,
}

/// What an `import` statement resolved to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Import {
    /// The import string.
    pub path: String,
    /// The alias (`as x`), if any.
    pub alias: Option<String>,
    /// Native module name, or the display name of a compiled unit.
    pub target: ImportTarget,
}

/// A resolved import.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ImportTarget {
    /// A native module.
    Native(String),
    /// Another unit, by display name.
    Unit(String),
}

/// A playbook with its imports, compiled.
#[derive(Clone)]
pub(crate) struct Program {
    /// Display name of the entry file.
    pub entry: String,
    /// Every unit by display name (the entry included).
    pub units: BTreeMap<String, Unit>,
    /// Source texts.
    pub sources: Sources,
}

impl Program {
    /// Is the file of this display name a stdlib module?
    pub(crate) fn is_stdlib(&self, name: &str) -> bool {
        self.units.get(name).is_some_and(|u| u.stdlib)
    }

    /// The entry unit.
    pub(crate) fn entry_unit(&self) -> &Unit {
        &self.units[&self.entry]
    }

    /// The playbook's `//!` doc comment.
    pub(crate) fn doc(&self) -> String {
        self.entry_unit()
            .ast
            .doc()
            .lines()
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Compiles files and follows their imports. Keeps every source it read, for diagnostics.
pub(crate) struct Loader<'a> {
    engine: &'a Engine,
    stdlib: &'a Stdlib,
    natives: &'a [&'a str],
    sources: Sources,
    cache: Option<&'a StdCache>,
}

/// Compiled stdlib modules by name, shared by the loaders of one `kmsctl check`: every
/// playbook imports much of the same stdlib, which need not be parsed again for each.
pub(crate) type StdCache = std::sync::Mutex<HashMap<String, (String, Arc<str>, Arc<AST>)>>;

enum Origin {
    File(PathBuf),
    Std(String),
}

impl<'a> Loader<'a> {
    /// A loader compiling with `engine`, knowing the native module names.
    pub(crate) fn new(engine: &'a Engine, stdlib: &'a Stdlib, natives: &'a [&'a str]) -> Self {
        Self { engine, stdlib, natives, sources: Sources::default(), cache: None }
    }

    /// Reuse (and fill) `cache` for stdlib modules.
    pub(crate) fn with_cache(mut self, cache: &'a StdCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Every source text read so far.
    pub(crate) fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Compile the file at `path` and everything it imports. Reports every error found.
    pub(crate) fn load_file(&self, path: &Path) -> Result<Program, Vec<CompileError>> {
        self.load(Origin::File(path.to_path_buf()))
    }

    /// Compile `std/<name>` and everything it imports.
    pub(crate) fn load_std(&self, name: &str) -> Result<Program, Vec<CompileError>> {
        self.load(Origin::Std(name.to_string()))
    }

    /// Compile `std/<name>` alone into the cache (its imports are not followed); an error is
    /// left for the load that meets it to report.
    pub(crate) fn warm(&self, name: &str) {
        let _ = self.compile(Origin::Std(name.to_string()), &self.sources);
    }

    fn load(&self, origin: Origin) -> Result<Program, Vec<CompileError>> {
        let sources = self.sources.clone();
        let mut units = BTreeMap::new();
        let mut errors = Vec::new();
        let entry = match self.compile(origin, &sources) {
            Ok(u) => u,
            Err(e) => return Err(vec![e]),
        };
        let entry_name = entry.name.clone();
        let mut failed = std::collections::HashSet::new();
        let mut queue = vec![entry];
        while let Some(mut unit) = queue.pop() {
            let mut resolved = Vec::new();
            for (mut imp, pos) in literal_imports(&unit.ast, &mut errors, &unit.name) {
                match self.target(&unit, &imp) {
                    Ok((target, origin)) => {
                        if let (ImportTarget::Unit(name), Some(origin)) = (&target, origin) {
                            let known = units.contains_key(name)
                                || *name == unit.name
                                || failed.contains(name)
                                || queue.iter().any(|u: &Unit| &u.name == name);
                            if !known {
                                match self.compile(origin, &sources) {
                                    Ok(u) => queue.push(u),
                                    Err(e) => {
                                        failed.insert(name.clone());
                                        errors.push(e);
                                    }
                                }
                            }
                        }
                        imp.target = target;
                        resolved.push(imp);
                    }
                    Err(help) => errors.push(CompileError::UnknownModule {
                        source_name: unit.name.clone(),
                        pos,
                        path: imp.path.clone(),
                        help,
                    }),
                }
            }
            unit.imports = resolved;
            units.insert(unit.name.clone(), unit);
        }
        if let Some(cycle) = find_cycle(&units, &entry_name) {
            errors.push(CompileError::ImportCycle { cycle });
        }
        if errors.is_empty() { Ok(Program { entry: entry_name, units, sources }) } else { Err(errors) }
    }

    fn compile(&self, origin: Origin, sources: &Sources) -> Result<Unit, CompileError> {
        let stdlib = matches!(origin, Origin::Std(_));
        if let (Origin::Std(n), Some(cache)) = (&origin, self.cache)
            && let Some((name, text, ast)) = cache.lock().expect("stdlib cache").get(n).cloned()
        {
            sources.insert(&name, &text);
            let path = match self.stdlib {
                Stdlib::Dir(d) => Some(d.join(format!("{n}.rhai"))),
                Stdlib::Embedded => None,
            };
            return Ok(Unit { name, path, ast, imports: Vec::new(), stdlib });
        }
        let key = match &origin {
            Origin::Std(n) => Some(n.clone()),
            Origin::File(_) => None,
        };
        let (name, path, text) = match origin {
            Origin::File(p) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| CompileError::Io { path: display(&p), message: e.to_string() })?;
                (display(&p), Some(p), text)
            }
            Origin::Std(n) => {
                let (name, text) = self.stdlib.load(&n).ok_or_else(|| CompileError::Io {
                    path: format!("std/{n}"),
                    message: "no such stdlib module".into(),
                })?;
                let path = match self.stdlib {
                    Stdlib::Dir(d) => Some(d.join(format!("{n}.rhai"))),
                    Stdlib::Embedded => None,
                };
                (name, path, text)
            }
        };
        sources.insert(&name, &text);
        let mut ast = self.engine.compile(&text).map_err(|e| CompileError::Parse {
            source_name: name.clone(),
            pos: e.position(),
            message: e.err_type().to_string(),
        })?;
        ast.set_source(name.as_str());
        let ast = Arc::new(ast);
        if let (Some(k), Some(cache)) = (key, self.cache) {
            cache.lock().expect("stdlib cache").insert(k, (name.clone(), Arc::from(text.as_str()), ast.clone()));
        }
        Ok(Unit { name, path, ast, imports: Vec::new(), stdlib })
    }

    /// Resolve an import made by `unit`.
    fn target(&self, unit: &Unit, imp: &Import) -> Result<(ImportTarget, Option<Origin>), String> {
        let p = imp.path.as_str();
        if self.natives.contains(&p) {
            return Ok((ImportTarget::Native(p.to_string()), None));
        }
        if let Some(name) = p.strip_prefix("std/") {
            return match self.stdlib.load(name) {
                Some((display_name, _)) => Ok((ImportTarget::Unit(display_name), Some(Origin::Std(name.to_string())))),
                None => {
                    let names = self.stdlib.names();
                    let hint = crate::suggest::suggest(name, names.iter().map(String::as_str))
                        .map(|s| format!("did you mean \"std/{s}\"? "))
                        .unwrap_or_default();
                    if names.is_empty() {
                        Err("there are no stdlib modules".into())
                    } else {
                        Err(format!("{hint}stdlib modules: {}", names.join(", ")))
                    }
                }
            };
        }
        if p.starts_with("./") || p.starts_with("../") {
            let base = match &unit.path {
                Some(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
                None => {
                    return Err("the built-in stdlib cannot import files; use --stdlib-dir".into());
                }
            };
            let mut file = base.join(p);
            if file.extension().is_none_or(|e| e != "rhai") {
                file.set_extension("rhai");
            }
            if !file.exists() {
                return Err(format!("{} does not exist", display(&file)));
            }
            return Ok((ImportTarget::Unit(display(&file)), Some(Origin::File(file))));
        }
        let hint = crate::suggest::suggest(p, self.natives.iter().copied())
            .map(|s| format!("did you mean \"{s}\"? "))
            .unwrap_or_default();
        Err(format!(
            "{hint}native modules: {}; stdlib modules are imported as \"std/<name>\", files as \"./path\"",
            self.natives.join(", ")
        ))
    }
}

/// The `import` statements of an AST with literal paths. Non-literal paths are errors.
fn literal_imports(ast: &AST, errors: &mut Vec<CompileError>, source: &str) -> Vec<(Import, Position)> {
    let mut out = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Import(x, pos))) = path.last() {
            let (expr, alias) = &**x;
            match expr {
                rhai::Expr::StringConstant(s, _) => out.push((
                    Import {
                        path: s.to_string(),
                        alias: (!alias.name.is_empty()).then(|| alias.name.to_string()),
                        target: ImportTarget::Native(String::new()),
                    },
                    *pos,
                )),
                _ => errors.push(CompileError::DynamicImport { source_name: source.to_string(), pos: *pos }),
            }
        }
        true
    });
    out
}

fn find_cycle(units: &BTreeMap<String, Unit>, entry: &str) -> Option<Vec<String>> {
    fn visit(
        u: &str,
        units: &BTreeMap<String, Unit>,
        stack: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == u) {
            let mut c = stack[i..].to_vec();
            c.push(u.to_string());
            return Some(c);
        }
        if done.iter().any(|d| d == u) {
            return None;
        }
        stack.push(u.to_string());
        for imp in units.get(u).map(|x| x.imports.as_slice()).unwrap_or_default() {
            if let ImportTarget::Unit(t) = &imp.target
                && let Some(c) = visit(t, units, stack, done)
            {
                return Some(c);
            }
        }
        stack.pop();
        done.push(u.to_string());
        None
    }
    visit(entry, units, &mut Vec::new(), &mut Vec::new())
}

/// Serves native modules and the program's compiled units at run time. Each unit's top-level
/// code runs once per run, on first import.
pub(crate) struct ProgramResolver {
    program: Arc<Program>,
    natives: HashMap<String, Shared<Module>>,
    evaluated: Mutex<HashMap<String, Shared<Module>>>,
}

impl ProgramResolver {
    /// A resolver for `program` with the run's native modules.
    pub(crate) fn new(program: Arc<Program>, natives: HashMap<String, Shared<Module>>) -> Self {
        Self { program, natives, evaluated: Mutex::new(HashMap::new()) }
    }
}

impl rhai::ModuleResolver for ProgramResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if let Some(m) = self.natives.get(path) {
            return Ok(m.clone());
        }
        let importer = source.unwrap_or(&self.program.entry);
        let target = self
            .program
            .units
            .get(importer)
            .and_then(|u| u.imports.iter().find(|i| i.path == path))
            .and_then(|i| match &i.target {
                ImportTarget::Unit(n) => Some(n.clone()),
                ImportTarget::Native(_) => None,
            })
            .ok_or_else(|| Box::new(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos)))?;
        if let Some(m) = self.evaluated.lock().expect("resolver lock").get(&target) {
            return Ok(m.clone());
        }
        let unit = &self.program.units[&target];
        let module = Module::eval_ast_as_new(Scope::new(), &unit.ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.to_string(), e, pos)))?;
        let module: Shared<Module> = module.into();
        self.evaluated.lock().expect("resolver lock").insert(target, module.clone());
        Ok(module)
    }
}
