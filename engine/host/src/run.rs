//! `kmsctl run` and `kmsctl check`: compile everything, validate parameters, run the script on
//! its own thread with cancellation (Ctrl-C, SIGTERM, `--timeout`), clean up, report.

use crate::ctx::{HostCtx, Settings};
use crate::diagnostics::{self, CompileError, LimitNames, ScriptDiag};
use crate::engine::{self, Limits};
use crate::error::{ErrorKind, ExitCode};
use crate::events::{EventBody, Events, Level, Outcome, Sink};
use crate::modules::{self, NativeModule, data};
use crate::params::{self, ParamError, ParamSpec, ParamValue, Resolved};
use crate::program::{Loader, Program, ProgramResolver, Stdlib, display};
use crate::secret::Redactor;
use crate::task::{self, CancelReason, CancelScope, TaskState};
use crate::ui::{Human, HumanStyle, JsonLines, OutputMode};
use crate::value::{Reveal, from_json, to_json};
use crate::{check, duration};
use rhai::{CallFnOptions, Dynamic, Engine, Scope};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How a terminal wants output.
#[derive(Clone, Copy, Debug)]
pub struct Terminal {
    /// Colour on stderr.
    pub color: bool,
}

/// The kmsctl host: native modules and limits. The binary builds one and calls [`Host::run`]
/// or [`Host::check`].
pub struct Host {
    natives: Vec<Box<dyn NativeModule>>,
    limits: Limits,
}

impl Host {
    /// A host with the core modules plus `extra` (k8s, helm, aws, ...).
    pub fn new(extra: Vec<Box<dyn NativeModule>>) -> Self {
        let mut natives = modules::core_modules();
        natives.extend(extra);
        Self { natives, limits: Limits::default() }
    }

    /// The native modules.
    pub fn natives(&self) -> &[Box<dyn NativeModule>] {
        &self.natives
    }

    fn names(&self) -> Vec<&'static str> {
        self.natives.iter().map(|m| m.name()).collect()
    }

    /// Run a playbook with the arguments that followed it. Returns the exit code.
    pub fn run(&self, playbook: &Path, args: &[String], term: Terminal) -> ExitCode {
        let (pre, _) = params::parse_args(args, None);
        let output = match &pre.output {
            None => OutputMode::Human,
            Some((t, i)) => match t.parse() {
                Ok(o) => o,
                Err(e) => {
                    let d = diagnostics::param_diags(
                        &[ParamError { message: e, arg: Some(*i), help: None }],
                        &display(playbook),
                        args,
                    );
                    eprint!("{}", d[0].render(term.color));
                    return ExitCode::Usage;
                }
            },
        };
        let stdlib = stdlib_from(pre.stdlib_dir.as_deref());
        let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("kmsctl-rt").build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::Failure;
            }
        };
        let mut sinks: Vec<Box<dyn Sink>> = vec![match output {
            OutputMode::Human => Box::new(Human::new(HumanStyle::detect(), pre.verbose)),
            OutputMode::Json => Box::new(JsonLines::new(Box::new(std::io::stdout()))),
        }];
        if let Some(dir) = &pre.artifacts {
            match std::fs::create_dir_all(dir).and_then(|_| std::fs::File::create(Path::new(dir).join("events.jsonl")))
            {
                Ok(f) => sinks.push(Box::new(JsonLines::new(Box::new(f)))),
                Err(e) => {
                    eprintln!("error: cannot write to the artifacts directory {dir}: {e}");
                    return ExitCode::Usage;
                }
            }
        }
        let events = Events::new(sinks, Redactor::new());
        let root = CancelScope::root();
        let settings = Settings {
            playbook_dir: playbook.parent().map(Path::to_path_buf).unwrap_or_default(),
            playbook: playbook.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            artifacts: pre.artifacts.as_ref().map(PathBuf::from),
            context: pre.context.clone(),
            verbose: pre.verbose,
            ..Settings::default()
        };
        let ctx = HostCtx::new(rt.handle().clone(), root.clone(), events.clone(), settings);
        let report = Report { events: &events, output, color: term.color };

        let built = engine::build(&ctx, &self.limits, &self.natives);
        let mut engine = built.engine;
        let names = self.names();
        let loader = Loader::new(&engine, &stdlib, &names);
        let program = match loader.load_file(playbook).and_then(|p| {
            let lint = check::lint(&engine, &p, &built.natives, check::Strictness::Run);
            if lint.is_empty() { Ok(p) } else { Err(lint) }
        }) {
            Ok(p) => Arc::new(p),
            Err(errors) => return report.compile(&errors, loader.sources()),
        };
        let specs = match declared_params(&engine, &program) {
            Ok(s) => s,
            Err(errors) => return report.compile(&errors, &program.sources),
        };
        if pre.help {
            print!("{}", params::render_help(&program.entry, &program.doc(), &specs));
            return ExitCode::Ok;
        }
        let (resolved, timeout) = match resolve_params(&specs, args) {
            Ok(r) => r,
            Err(errors) => return report.params(&errors, &program.entry, args),
        };
        let mut masked = serde_json::Map::new();
        let mut values = Vec::new();
        for spec in &specs {
            let v = param_dynamic(spec, resolved.get(&spec.name), &ctx);
            masked.insert(spec.name.clone(), to_json(&v, Reveal::Mask).unwrap_or_default());
            values.push((spec.name.clone(), v));
        }
        engine::set_params(&mut engine, values);
        engine.set_module_resolver(ProgramResolver::new(program.clone(), built.natives));
        events
            .emit(EventBody::RunStarted { playbook: program.entry.clone(), params: serde_json::Value::Object(masked) });

        let result = execute(&rt, &ctx, Arc::new(engine), program.clone(), timeout);
        // Cleanup runs however the run ended: stop child processes, close port-forwards.
        let budget = if root.is_cancelled() { Duration::from_millis(300) } else { Duration::from_secs(10) };
        let closed = ctx.cleanup_names();
        rt.block_on(ctx.run_cleanup(budget));
        let code = match result {
            Ok(()) => {
                events.run_finished(Outcome::Ok, 0, closed);
                ExitCode::Ok
            }
            Err(e) => {
                let limits = LimitNames {
                    operations: self.limits.max_operations,
                    call_levels: self.limits.max_call_levels,
                    string_size: self.limits.max_string_size,
                    array_size: self.limits.max_array_size,
                    map_size: self.limits.max_map_size,
                };
                let targets = |importer: &str, path: &str| import_target(&program, importer, path);
                let failure = diagnostics::runtime_failure(&e, &program.entry, &program.sources, limits, &targets);
                let code = match failure.terminated.as_deref() {
                    Some("interrupted") => ExitCode::Cancelled,
                    Some(r) if r.contains("deadline") => ExitCode::Timeout,
                    _ => ExitCode::for_kind(failure.kind),
                };
                report.runtime(&failure.diag, failure.kind, code, &ctx, closed)
            }
        };
        rt.shutdown_background();
        code
    }

    /// Compile every playbook and module under `paths` (and every stdlib module), resolve
    /// imports, lint calls, and report every problem. Returns the exit code.
    pub fn check(&self, paths: &[PathBuf], stdlib_dir: Option<&str>, term: Terminal, quiet: bool) -> ExitCode {
        let stdlib = stdlib_from(stdlib_dir);
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::Failure;
            }
        };
        let events = Events::new(Vec::new(), Redactor::new());
        let ctx = HostCtx::new(rt.handle().clone(), CancelScope::root(), events, Settings::default());
        let built = engine::build(&ctx, &self.limits, &self.natives);
        let names = self.names();
        let mut files = Vec::new();
        for p in paths {
            collect_rhai(p, &mut files);
        }
        files.sort();
        files.dedup();
        let mut diags = Vec::new();
        let mut count = 0;
        for f in &files {
            count += 1;
            let loader = Loader::new(&built.engine, &stdlib, &names);
            match loader.load_file(f) {
                Ok(p) => {
                    let mut errors = check::lint(&built.engine, &p, &built.natives, check::Strictness::Check);
                    if let Err(mut e) = declared_params(&built.engine, &p) {
                        errors.append(&mut e);
                    }
                    diags.extend(errors.iter().map(|e| e.to_diag(&p.sources)));
                }
                Err(errors) => diags.extend(errors.iter().map(|e| e.to_diag(loader.sources()))),
            }
        }
        if stdlib_dir.is_some() || paths.is_empty() {
            for name in stdlib.names() {
                count += 1;
                let loader = Loader::new(&built.engine, &stdlib, &names);
                match loader.load_std(&name) {
                    Ok(p) => diags.extend(
                        check::lint(&built.engine, &p, &built.natives, check::Strictness::Check)
                            .iter()
                            .map(|e| e.to_diag(&p.sources)),
                    ),
                    Err(errors) => diags.extend(errors.iter().map(|e| e.to_diag(loader.sources()))),
                }
            }
        }
        rt.shutdown_background();
        let mut seen = std::collections::HashSet::new();
        diags.retain(|d| seen.insert(d.render(false)));
        for d in &diags {
            eprint!("{}", d.render(term.color));
        }
        if diags.is_empty() {
            if !quiet {
                eprintln!("checked {count} file{}: ok", if count == 1 { "" } else { "s" });
            }
            ExitCode::Ok
        } else {
            eprintln!(
                "checked {count} file{}: {} error{}",
                if count == 1 { "" } else { "s" },
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            ExitCode::Usage
        }
    }
}

fn stdlib_from(dir: Option<&str>) -> Stdlib {
    match dir.map(str::to_string).or_else(|| std::env::var("KMSCTL_STDLIB_DIR").ok().filter(|s| !s.is_empty())) {
        Some(d) => Stdlib::Dir(PathBuf::from(d)),
        None => Stdlib::Embedded,
    }
}

fn collect_rhai(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                collect_rhai(&e.path(), out);
            }
        }
    } else if p.extension().is_some_and(|e| e == "rhai") || !p.exists() {
        out.push(p.to_path_buf());
    }
}

fn import_target(program: &Program, importer: &str, path: &str) -> Option<String> {
    program.units.get(importer)?.imports.iter().find(|i| i.path == path).and_then(|i| match &i.target {
        crate::program::ImportTarget::Unit(n) => Some(n.clone()),
        crate::program::ImportTarget::Native(_) => None,
    })
}

/// The parameters a program declares in `params()`.
pub fn declared_params(engine: &Engine, program: &Program) -> Result<Vec<ParamSpec>, Vec<CompileError>> {
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
        .map_err(|e| err(format!("params() failed: {}", modules::short_message(&e))))?;
    params::parse_specs(&decl).map_err(|errs| errs.into_iter().flat_map(|e| err(e.message)).collect())
}

fn resolve_params(specs: &[ParamSpec], args: &[String]) -> Result<(Resolved, Option<Duration>), Vec<ParamError>> {
    let (run_args, mut errors) = params::parse_args(args, Some(specs));
    let mut files = Vec::new();
    for (f, idx) in &run_args.values {
        let parsed = std::fs::read_to_string(f).map_err(|e| e.to_string()).and_then(|t| {
            if f.ends_with(".json") { serde_json::from_str(&t).map_err(|e| e.to_string()) } else { data::from_yaml(&t) }
        });
        match parsed {
            Ok(v) => files.push((f.clone(), from_json(v))),
            Err(e) => errors.push(ParamError { message: format!("--values {f}: {e}"), arg: Some(*idx), help: None }),
        }
    }
    let timeout = match &run_args.timeout {
        Some((t, i)) => match duration::parse(t) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(ParamError { message: format!("--timeout: {e}"), arg: Some(*i), help: None });
                None
            }
        },
        None => None,
    };
    let env = |k: &str| std::env::var(k).ok();
    let resolved = params::resolve(specs, &run_args, &env, &files);
    if let Err(mut e) = resolved.clone() {
        errors.append(&mut e);
    }
    match resolved {
        Ok(r) if errors.is_empty() => Ok((r, timeout)),
        _ => {
            // Command-line errors first, in argument order.
            errors.sort_by_key(|e| e.arg.unwrap_or(usize::MAX));
            Err(errors)
        }
    }
}

fn param_dynamic(spec: &ParamSpec, v: Option<&ParamValue>, ctx: &HostCtx) -> Dynamic {
    match v {
        None => Dynamic::UNIT,
        Some(ParamValue::String(s)) if spec.secret => Dynamic::from(ctx.secret(s.as_str())),
        Some(ParamValue::String(s)) => s.clone().into(),
        Some(ParamValue::Int(i)) => (*i).into(),
        Some(ParamValue::Bool(b)) => (*b).into(),
        Some(ParamValue::Duration(_, t)) => t.clone().into(),
        Some(ParamValue::List(l)) => Dynamic::from_array(l.iter().map(|s| s.clone().into()).collect()),
        Some(ParamValue::IntList(l)) => Dynamic::from_array(l.iter().map(|i| (*i).into()).collect()),
    }
}

enum Ended {
    Finished(Result<(), Box<rhai::EvalAltResult>>),
    Signal,
    Deadline,
}

/// Run the entry script on its own thread; handle signals and the run deadline.
fn execute(
    rt: &tokio::runtime::Runtime,
    ctx: &HostCtx,
    engine: Arc<Engine>,
    program: Arc<Program>,
    timeout: Option<Duration>,
) -> Result<(), Box<rhai::EvalAltResult>> {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let root = ctx.root().clone();
    let ast = program.entry_unit().ast.clone();
    let handle = rt.handle().clone();
    let spawned = std::thread::Builder::new().name("kmsctl-script".into()).stack_size(64 << 20).spawn(move || {
        let _enter = handle.enter();
        let r = task::with_task(TaskState { scope: root, step: None, label: None }, || engine.run_ast(&ast));
        let _ = tx.send(r);
    });
    if let Err(e) = spawned {
        return Err(format!("cannot start the script thread: {e}").into());
    }
    let lost = || Err::<(), _>(Box::<rhai::EvalAltResult>::from("the script thread stopped unexpectedly"));
    rt.block_on(async {
        let deadline = async {
            match timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let ended = tokio::select! {
            r = &mut rx => Ended::Finished(r.unwrap_or_else(|_| lost())),
            _ = signal() => Ended::Signal,
            _ = deadline => Ended::Deadline,
        };
        let (reason, wait) = match ended {
            Ended::Finished(r) => return r,
            Ended::Signal => {
                ctx.log(Level::Warn, "interrupted: stopping (press Ctrl-C again to stop at once)");
                (CancelReason::Interrupted, Duration::from_millis(1500))
            }
            Ended::Deadline => {
                ctx.log(
                    Level::Error,
                    format!("the run exceeded --timeout {}", duration::format(timeout.unwrap_or_default())),
                );
                (CancelReason::RunDeadline, Duration::from_secs(5))
            }
        };
        ctx.root().cancel(reason);
        tokio::select! {
            r = &mut rx => r.unwrap_or_else(|_| lost()),
            _ = tokio::time::sleep(wait) => Err(crate::ctx::terminated(ctx.root())),
            _ = signal() => Err(crate::ctx::terminated(ctx.root())),
        }
    })
}

async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

struct Report<'a> {
    events: &'a Events,
    output: OutputMode,
    color: bool,
}

impl Report<'_> {
    fn emit(&self, kind: &str, diags: &[ScriptDiag]) {
        for d in diags {
            eprint!("{}", d.render(self.color));
            if self.output == OutputMode::Json {
                self.events.emit(EventBody::Error {
                    kind: kind.into(),
                    message: d.message().into(),
                    diagnostic: d.render(false),
                });
            }
        }
    }

    fn compile(&self, errors: &[CompileError], sources: &crate::program::Sources) -> ExitCode {
        let diags: Vec<ScriptDiag> = errors.iter().map(|e| e.to_diag(sources)).collect();
        self.emit("compile", &diags);
        eprintln!("{} error{}; nothing was run", diags.len(), if diags.len() == 1 { "" } else { "s" });
        self.events.run_finished(Outcome::Failed, ExitCode::Usage.code(), Vec::new());
        ExitCode::Usage
    }

    fn params(&self, errors: &[ParamError], program: &str, args: &[String]) -> ExitCode {
        let diags = diagnostics::param_diags(errors, program, args);
        self.emit("params", &diags);
        eprintln!("{} parameter error{}; nothing was run", diags.len(), if diags.len() == 1 { "" } else { "s" });
        self.events.run_finished(Outcome::Failed, ExitCode::Usage.code(), Vec::new());
        ExitCode::Usage
    }

    fn runtime(
        &self,
        diag: &ScriptDiag,
        kind: ErrorKind,
        code: ExitCode,
        ctx: &HostCtx,
        closed: Vec<String>,
    ) -> ExitCode {
        let outcome = if code == ExitCode::Cancelled { Outcome::Cancelled } else { Outcome::Failed };
        let rendered = ctx.redactor().redact(&diag.render(self.color)).into_owned();
        if self.output == OutputMode::Json {
            self.events.emit(EventBody::Error {
                kind: kind.to_string(),
                message: diag.message().into(),
                diagnostic: diag.render(false),
            });
        }
        if ctx.settings().artifacts.is_some() {
            let _ = crate::modules::fs::write_artifact(ctx, "error.txt", &diag.render(false));
        }
        self.events.run_finished(outcome, code.code(), closed);
        eprint!("{rendered}");
        code
    }
}
