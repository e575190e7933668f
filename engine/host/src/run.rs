//! `kmsctl run` and `kmsctl check`: compile everything, validate parameters, run the script on
//! its own thread with cancellation (Ctrl-C, SIGTERM, `--timeout`), clean up, report.

use crate::ctx::{HostCtx, Settings};
use crate::diagnostics::{self, CompileError, LimitNames, ScriptDiag};
use crate::engine::{self, Limits};
use crate::error::{ErrorKind, ExitCode};
use crate::events::{EventBody, Events, Level, Outcome, Sink};
use crate::modules::{self, NativeModule, data};
use crate::params::{self, ParamError, ParamSpec, ParamValue, Resolved};
use crate::plan::{Effect, Mode, PlanReport};
use crate::program::{Loader, Program, ProgramResolver, Stdlib};
use crate::report::{Outputs, Recorder};
use crate::secret::Redactor;
use crate::secret::Secret;
use crate::task::{self, CancelReason, CancelScope, TaskState};
use crate::ui::{Human, HumanStyle, JsonLines, OutputMode, github_actions};
use crate::value::{Reveal, from_json, to_json};
use crate::{check, duration};
use rhai::{Dynamic, Engine};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The kmsctl host: native modules and limits. The binary builds one and calls [`Host::run`]
/// or [`Host::check`], then renders what they return.
pub struct Host {
    pub(crate) natives: Vec<Box<dyn NativeModule>>,
    pub(crate) limits: Limits,
}

/// What `kmsctl run` produced when it did not fail.
#[derive(Debug)]
pub enum Ran {
    /// The playbook finished.
    Finished,
    /// `--help`: the playbook's help text, for stdout.
    Help(String),
    /// `--plan`: the playbook ran with every change recorded instead of made; the rendered
    /// plan for stdout (empty with `--output json`, whose `plan` event carries it).
    Planned(String),
    /// `--diff`: the diffs for stdout (empty with `--output json`), and whether anything would
    /// change ([`ExitCode::CHANGES`]).
    Diffed {
        /// The rendered diffs.
        text: String,
        /// Some object would change.
        changes: bool,
    },
}

/// Why `kmsctl run` did not finish. One exit code per variant ([`RunError::exit_code`]); the
/// binary prints [`RunError::render`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The command line or the playbook's parameters are invalid. Nothing ran.
    #[error("{} parameter error{}; nothing was run", .diags.len(), plural(.diags.len()))]
    Params {
        /// One report per problem, pointing into the command line.
        diags: Vec<ScriptDiag>,
        /// Scrubs secret parameter values from the rendering.
        redactor: Redactor,
    },
    /// The playbook or a module it imports does not compile or fails the lint. Nothing ran.
    #[error("{} error{}; nothing was run", .0.len(), plural(.0.len()))]
    Compile(Vec<ScriptDiag>),
    /// The artifacts directory cannot be written. Nothing ran.
    #[error("cannot write to the artifacts directory {dir}: {source}")]
    Artifacts {
        /// The directory given with `--artifacts`.
        dir: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The playbook failed: an uncaught error of `kind`.
    #[error("{}", .diag.message())]
    Failed {
        /// The report: message, source line, call chain.
        diag: Box<ScriptDiag>,
        /// The error's category; it picks the exit code.
        kind: ErrorKind,
        /// Scrubs the run's secrets from the rendering.
        redactor: Redactor,
    },
    /// The run was stopped from outside: Ctrl-C, SIGTERM or `--timeout`.
    #[error("run stopped: {}", .reason.as_str())]
    Stopped {
        /// The report of where the script was when it stopped.
        diag: Box<ScriptDiag>,
        /// Why ([`CancelReason::Interrupted`] or [`CancelReason::RunDeadline`]).
        reason: CancelReason,
        /// Scrubs the run's secrets from the rendering.
        redactor: Redactor,
    },
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl RunError {
    /// The process exit code (the README's table).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Params { .. } | Self::Compile(_) | Self::Artifacts { .. } => ExitCode::USAGE,
            Self::Runtime(_) => ExitCode::FAILURE,
            Self::Failed { kind, .. } => ExitCode::for_kind(*kind),
            Self::Stopped { reason: CancelReason::RunDeadline, .. } => ExitCode::TIMEOUT,
            Self::Stopped { .. } => ExitCode::CANCELLED,
        }
    }

    /// The text for stderr, secrets scrubbed.
    pub fn render(&self, color: bool) -> String {
        let all = |diags: &[ScriptDiag]| diags.iter().map(|d| d.render(color)).collect::<String>();
        match self {
            Self::Params { diags, redactor } => redactor.redact(&format!("{}{self}\n", all(diags))).into_owned(),
            Self::Compile(diags) => format!("{}{self}\n", all(diags)),
            Self::Artifacts { .. } | Self::Runtime(_) => format!("error: {self}\n"),
            Self::Failed { diag, redactor, .. } | Self::Stopped { diag, redactor, .. } => {
                redactor.redact(&diag.render(color)).into_owned()
            }
        }
    }
}

/// What `kmsctl check` found.
#[derive(Debug)]
pub struct Checked {
    /// Files checked.
    pub files: usize,
    /// Every problem, deduplicated (empty: all good).
    pub diags: Vec<ScriptDiag>,
}

impl Checked {
    /// 0 when nothing was found, 2 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.diags.is_empty() { ExitCode::OK } else { ExitCode::USAGE }
    }

    /// The report for stderr; `quiet` leaves out the line that says all is well.
    pub fn render(&self, color: bool, quiet: bool) -> String {
        let n = self.files;
        let mut out: String = self.diags.iter().map(|d| d.render(color)).collect();
        if self.diags.is_empty() {
            if !quiet {
                out += &format!("checked {n} file{}: ok\n", plural(n));
            }
        } else {
            let e = self.diags.len();
            out += &format!("checked {n} file{}: {e} error{}\n", plural(n), plural(e));
        }
        out
    }
}

impl Host {
    /// A host with the core modules plus `extra` (k8s, helm, aws, ...).
    pub fn new(extra: Vec<Box<dyn NativeModule>>) -> Self {
        let mut natives = modules::core_modules();
        natives.extend(extra);
        Self { natives, limits: Limits::default() }
    }

    fn names(&self) -> Vec<&'static str> {
        self.natives.iter().map(|m| m.name()).collect()
    }

    /// Every function and method of the native modules, as `(module, name, effect)` with the
    /// effect its registration declared (`None`: registered without one, outside
    /// [`crate::ModuleBuilder`]). Plan mode relies on these declarations; a test checks that
    /// none is missing.
    ///
    /// # Errors
    /// [`RunError::Runtime`] if the async runtime cannot start.
    pub fn effects(&self) -> Result<Vec<(String, String, Option<Effect>)>, RunError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RunError::Runtime)?;
        let _enter = rt.enter();
        let events = Events::new(Vec::new(), Redactor::new());
        let ctx = HostCtx::new(rt.handle().clone(), CancelScope::root(), events, Settings::default());
        let mut out = Vec::new();
        for m in &self.natives {
            let built = m.build(&ctx);
            let mut names: Vec<String> = built
                .functions
                .gen_fn_signatures_with_mapper(Into::into)
                .chain(built.methods.gen_fn_signatures_with_mapper(Into::into))
                .map(|sig| sig.split('(').next().unwrap_or_default().trim().to_string())
                .collect();
            names.sort();
            names.dedup();
            for n in names {
                let effect = built.effects.get(&n).copied();
                out.push((m.name().to_string(), n, effect));
            }
        }
        Ok(out)
    }

    /// Run a playbook with the arguments that followed it.
    ///
    /// # Errors
    /// Everything that stops a run, each with its exit code: see [`RunError`].
    pub fn run(&self, playbook: &Path, args: &[String]) -> Result<Ran, RunError> {
        self.run_collecting(playbook, args, &mut Vec::new())
    }

    /// [`Host::run`], also giving the files the run read its program from: the playbook, the
    /// modules it imports (those on disk) and its values files — what `--watch` watches.
    pub(crate) fn run_collecting(
        &self,
        playbook: &Path,
        args: &[String],
        files: &mut Vec<PathBuf>,
    ) -> Result<Ran, RunError> {
        let (pre, _) = params::parse_args(args, None);
        files.push(playbook.to_path_buf());
        files.extend(pre.values.iter().map(|(f, _)| PathBuf::from(f)));
        // A bad --output is reported after the playbook's parameters are known, so that the
        // command line it quotes can have secret values masked.
        let (output, bad_output) = match &pre.output {
            None => (OutputMode::Human, None),
            Some((t, i)) => match t.parse() {
                Ok(o) => (o, None),
                Err(e) => (OutputMode::Human, Some(ParamError { message: e, arg: Some(*i), help: None })),
            },
        };
        let stdlib = stdlib_from(pre.stdlib_dir.as_deref());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("kmsctl-rt")
            .build()
            .map_err(RunError::Runtime)?;
        let mut sinks: Vec<Box<dyn Sink>> = vec![match output {
            OutputMode::Human => Box::new(Human::new(HumanStyle::detect(), pre.verbose)),
            OutputMode::Json => Box::new(JsonLines::new(Box::new(std::io::stdout()))),
        }];
        if let Some(dir) = &pre.artifacts {
            let file =
                std::fs::create_dir_all(dir).and_then(|_| std::fs::File::create(Path::new(dir).join("events.jsonl")));
            match file {
                Ok(f) => sinks.push(Box::new(JsonLines::new(Box::new(f)))),
                Err(source) => return Err(RunError::Artifacts { dir: dir.clone(), source }),
            }
        }
        // The run report, the summary and --junit, written when the run ends.
        sinks.push(Box::new(Recorder::new(Outputs {
            artifacts: PathBuf::from(pre.artifacts.as_deref().unwrap_or(crate::ctx::DEFAULT_ARTIFACTS)),
            events_jsonl: pre.artifacts.is_none(),
            junit: pre.junit.as_ref().map(PathBuf::from),
            step_summary: github_actions()
                .then(|| std::env::var_os("GITHUB_STEP_SUMMARY"))
                .flatten()
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        })));
        let events = Events::new(sinks, Redactor::new());
        let root = CancelScope::root();
        let settings = Settings {
            playbook_dir: playbook.parent().map(Path::to_path_buf).unwrap_or_default(),
            playbook: playbook.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            artifacts: pre.artifacts.as_ref().map(PathBuf::from),
            context: pre.context.clone(),
            verbose: pre.verbose,
            mode: match (pre.plan, pre.diff) {
                (true, _) => Mode::Plan { against_cluster: pre.against_cluster.is_some() },
                (false, Some(_)) => Mode::Diff,
                (false, None) => Mode::Run,
            },
        };
        let ctx = HostCtx::new(rt.handle().clone(), root.clone(), events.clone(), settings);
        let report = Report { events: &events };

        let built = engine::build(&ctx, &self.limits, &self.natives);
        let mut engine = built.engine;
        let names = self.names();
        let loader = Loader::new(&engine, &stdlib, &names);
        let program = match loader.load_file(playbook) {
            Ok(p) => Arc::new(p),
            Err(errors) => {
                // The files that did load: fixing one is a change to run again on.
                files.extend(loader.sources().names().into_iter().map(PathBuf::from).filter(|p| p.is_file()));
                return Err(report.compile(&errors, loader.sources()));
            }
        };
        files.extend(program.units.values().filter_map(|u| u.path.clone()));
        // Before params(): it may import a stdlib module that declares a shared contract.
        engine.set_module_resolver(ProgramResolver::new(program.clone(), built.natives.clone()));
        let specs = match params::declared(&engine, &program) {
            Ok(s) => s,
            Err(errors) => return Err(report.compile(&errors, &program.sources)),
        };
        let declared: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let lint =
            check::lint(&engine, &program, &built.natives, &built.options, check::Strictness::Run, Some(&declared));
        if !lint.is_empty() {
            return Err(report.compile(&lint, &program.sources));
        }
        // Secret values (command line, environment, values files) are masked from here on, even
        // in reports of the command line itself and however parsing fails.
        let (run_args, arg_errors) = params::parse_args(args, Some(&specs));
        let env = |k: &str| std::env::var(k).ok();
        register_secrets(&specs, &run_args, &env, &[], ctx.redactor());
        let line = CommandLine { program: &program.entry, args, masked: &run_args.masked };
        let mut bad: Vec<ParamError> = bad_output.into_iter().collect();
        if let (Some(i), false) = (pre.against_cluster, pre.plan) {
            bad.push(ParamError {
                message: "--against-cluster only goes with --plan".into(),
                arg: Some(i),
                help: None,
            });
        }
        if let (Some(i), true) = (pre.diff, pre.plan) {
            bad.push(ParamError {
                message: "--diff and --plan are two modes: pick one".into(),
                arg: Some(i),
                help: Some("--plan --against-cluster lists the changes; --diff shows them object by object".into()),
            });
        }
        if !bad.is_empty() {
            return Err(report.params(&bad, &line, ctx.redactor()));
        }
        if pre.help {
            return Ok(Ran::Help(params::render_help(&program.entry, &program.doc(), &specs)));
        }
        let (resolved, timeout) = match resolve_params(&specs, &run_args, arg_errors, &env, ctx.redactor()) {
            Ok(r) => r,
            Err(errors) => return Err(report.params(&errors, &line, ctx.redactor())),
        };
        let mut masked = serde_json::Map::new();
        let mut values = Vec::new();
        for spec in &specs {
            let v = param_dynamic(spec, resolved.get(&spec.name), &ctx);
            masked.insert(spec.name.clone(), to_json(&v, Reveal::Mask).unwrap_or_default());
            values.push((spec.name.clone(), v));
        }
        let all = engine::set_params(&mut engine, values);
        if let Err(e) = params::validate(&engine, &program, &specs, args, all) {
            return Err(report.params(&[e], &line, ctx.redactor()));
        }
        events
            .emit(EventBody::RunStarted { playbook: program.entry.clone(), params: serde_json::Value::Object(masked) });

        let result = execute(&rt, &ctx, Arc::new(engine), program.clone(), timeout);
        // Cleanup runs however the run ended: stop child processes, close port-forwards.
        let budget = if root.is_cancelled() { CLEANUP_WHEN_STOPPED } else { Duration::from_secs(10) };
        let closed = ctx.cleanup_names();
        rt.block_on(ctx.run_cleanup(budget));
        let outcome = match result {
            Ok(()) if ctx.mode().is_plan() => {
                let plan =
                    PlanReport::build(&program.entry, !ctx.mode().is_offline(), &events.steps(), ctx.plan().ops());
                let diff = ctx.mode().is_diff();
                let text = if diff { plan.render_diff() } else { plan.render() };
                let text = ctx.redactor().redact(&text).into_owned();
                let json = serde_json::to_value(&plan).unwrap_or_default();
                let (txt, json_name) = if diff { ("diff.txt", "diff.json") } else { ("plan.txt", "plan.json") };
                let written = crate::modules::fs::write_artifact(&ctx, txt, &text)
                    .and_then(|_| crate::modules::fs::write_artifact(&ctx, json_name, &format!("{json:#}\n")));
                if let Err(e) = written {
                    ctx.log(Level::Warn, format!("cannot write the plan to the artifacts directory: {e}"));
                }
                events.emit(EventBody::Plan { plan: json });
                let changes = plan.changed.unwrap_or(0) > 0;
                events.run_finished(Outcome::Ok, if changes { ExitCode::CHANGES } else { ExitCode::OK }, closed);
                let text = if output == OutputMode::Human { text } else { String::new() };
                Ok(if diff { Ran::Diffed { text, changes } } else { Ran::Planned(text) })
            }
            Ok(()) => {
                events.run_finished(Outcome::Ok, 0, closed);
                Ok(Ran::Finished)
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
                let is_stdlib = |name: &str| program.is_stdlib(name);
                let failure =
                    diagnostics::runtime_failure(&e, &program.entry, &program.sources, limits, &targets, &is_stdlib);
                let redactor = ctx.redactor().clone();
                let diag = Box::new(failure.diag);
                // Only the root scope's reason says the run was stopped from outside; a
                // termination without one is an ordinary failure of its kind.
                let err = match root.reason().filter(|_| failure.terminated) {
                    Some(reason @ (CancelReason::Interrupted | CancelReason::RunDeadline)) => {
                        RunError::Stopped { diag, reason, redactor }
                    }
                    _ => RunError::Failed { diag, kind: failure.kind, redactor },
                };
                // A CI annotation points at the playbook's line, not into the stdlib.
                let user_file = |name: &str| !program.is_stdlib(name);
                Err(report.runtime(err, failure.kind, &ctx, closed, &user_file))
            }
        };
        rt.shutdown_background();
        outcome
    }

    /// Shell completion of a playbook's parameters: the words to offer after `prev`, each with
    /// a description. The playbook is compiled and its `params()` read; nothing runs.
    ///
    /// # Errors
    /// [`RunError::Runtime`] if the async runtime cannot start; [`RunError::Compile`] if the
    /// playbook does not compile.
    pub fn complete_params(&self, playbook: &Path, prev: Option<&str>) -> Result<Vec<(String, String)>, RunError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RunError::Runtime)?;
        let events = Events::new(Vec::new(), Redactor::new());
        let ctx = HostCtx::new(rt.handle().clone(), CancelScope::root(), events.clone(), Settings::default());
        let mut built = engine::build(&ctx, &self.limits, &self.natives);
        let (stdlib, names) = (stdlib_from(None), self.names());
        let loader = Loader::new(&built.engine, &stdlib, &names);
        let loaded = loader.load_file(playbook);
        let report = Report { events: &events };
        let program = match loaded {
            Ok(p) => Arc::new(p),
            Err(errors) => return Err(report.compile(&errors, loader.sources())),
        };
        built.engine.set_module_resolver(ProgramResolver::new(program.clone(), built.natives.clone()));
        let specs = params::declared(&built.engine, &program).map_err(|e| report.compile(&e, &program.sources))?;
        rt.shutdown_background();
        Ok(params::candidates(&specs, prev))
    }

    /// Compile every playbook and module under `paths` (and every stdlib module), resolve
    /// imports, lint calls, and collect every problem.
    ///
    /// # Errors
    /// [`RunError::Runtime`] if the async runtime cannot start; problems in the files are
    /// not errors but the content of [`Checked`].
    pub fn check(&self, paths: &[PathBuf], stdlib_dir: Option<&str>) -> Result<Checked, RunError> {
        let stdlib = stdlib_from(stdlib_dir);
        let mut items = Vec::new();
        for p in paths {
            collect_rhai(p, &mut items);
        }
        items.sort();
        items.dedup();
        let mut items: Vec<CheckItem> = items.into_iter().map(CheckItem::File).collect();
        if stdlib_dir.is_some() || paths.is_empty() {
            items.extend(stdlib.names().into_iter().map(CheckItem::Std));
        }
        // Parsing and linting dominate: the work is spread over the cores, each thread with an
        // engine of its own (a file's check sets the engine's module resolver). First every
        // stdlib module is parsed once into the shared cache, then the files are checked; a
        // stdlib module is linted once, by whichever file imports it first.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, items.len().max(1));
        let cache = crate::program::StdCache::default();
        let linted = std::sync::Mutex::default();
        let std_names = stdlib.names();
        let (stdlib, cache, linted, items) = (&stdlib, &cache, &linted, &items);
        // Each thread: its own runtime and engine, then `work` on its share (every `threads`th).
        let in_threads = |work: &CheckWork<'_>| {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        s.spawn(move || {
                            let rt = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .map_err(RunError::Runtime)?;
                            let events = Events::new(Vec::new(), Redactor::new());
                            let ctx =
                                HostCtx::new(rt.handle().clone(), CancelScope::root(), events, Settings::default());
                            let mut th = CheckThread {
                                built: engine::build(&ctx, &self.limits, &self.natives),
                                names: self.names(),
                            };
                            let done = work(t, &mut th);
                            rt.shutdown_background();
                            Ok::<_, RunError>(done)
                        })
                    })
                    .collect();
                let mut all = Vec::new();
                for h in handles {
                    all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?);
                }
                Ok::<_, RunError>(all)
            })
        };
        in_threads(&|t, th| {
            for name in std_names.iter().skip(t).step_by(threads) {
                Loader::new(&th.built.engine, stdlib, &th.names).with_cache(cache).warm(name);
            }
            Vec::new()
        })?;
        let mut by_item = in_threads(&|t, th| {
            let (natives, options) = (th.built.natives.clone(), th.built.options.clone());
            let linter = check::Linter::new(&th.built.engine, &natives, &options);
            let mine = items.iter().enumerate().skip(t).step_by(threads);
            mine.map(|(i, item)| (i, th.check(&linter, item, stdlib, cache, linted))).collect()
        })?;
        by_item.sort_by_key(|(i, _)| *i);
        let mut diags: Vec<ScriptDiag> = by_item.into_iter().flat_map(|(_, d)| d).collect();
        // Which file lints a stdlib module first depends on the threads: order by place.
        diags.sort_by_cached_key(ScriptDiag::place);
        let mut seen = std::collections::HashSet::new();
        diags.retain(|d| seen.insert(d.render(false)));
        Ok(Checked { files: items.len(), diags })
    }
}

/// What each thread of [`Host::check`] does with its index: each item's problems, by index.
type CheckWork<'a> = dyn Fn(usize, &mut CheckThread) -> Vec<(usize, Vec<ScriptDiag>)> + Sync + 'a;

/// One thread of [`Host::check`].
struct CheckThread {
    built: engine::Built,
    names: Vec<&'static str>,
}

impl CheckThread {
    /// Every problem of one item.
    fn check(
        &mut self,
        linter: &check::Linter<'_>,
        item: &CheckItem,
        stdlib: &Stdlib,
        cache: &crate::program::StdCache,
        linted: &std::sync::Mutex<std::collections::HashSet<String>>,
    ) -> Vec<ScriptDiag> {
        let loader = Loader::new(&self.built.engine, stdlib, &self.names).with_cache(cache);
        let loaded = match item {
            CheckItem::File(f) => loader.load_file(f),
            CheckItem::Std(name) => loader.load_std(name),
        };
        let p = match loaded {
            Ok(p) => Arc::new(p),
            Err(errors) => return errors.iter().map(|e| e.to_diag(loader.sources())).collect(),
        };
        let mut errors = Vec::new();
        let mut declared = None;
        if let CheckItem::File(_) = item {
            self.built.engine.set_module_resolver(ProgramResolver::new(p.clone(), self.built.natives.clone()));
            match params::declared(&self.built.engine, &p) {
                Ok(specs) => declared = Some(specs.into_iter().map(|s| s.name).collect::<Vec<_>>()),
                Err(e) => errors = e,
            }
        }
        let mut lint = linter.lint(&p, check::Strictness::Check, declared.as_deref(), linted);
        lint.append(&mut errors);
        lint.iter().map(|e| e.to_diag(&p.sources)).collect()
    }
}

/// What `kmsctl check` checks: a file, or a stdlib module by name.
enum CheckItem {
    File(PathBuf),
    Std(String),
}

/// Register every value a secret parameter is given — on the command line (`--token X`,
/// `--token=X`, `--set token=X`), in its environment variables or in a values file — so that no
/// report, not even one of the command line, shows it.
fn register_secrets(
    specs: &[ParamSpec],
    run_args: &params::RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
    files: &[(String, Dynamic)],
    redactor: &Redactor,
) {
    for spec in specs.iter().filter(|s| s.secret) {
        let mut values: Vec<String> =
            run_args.params.iter().filter(|r| r.name == spec.name).map(|r| r.text.clone()).collect();
        let own = spec.env_var();
        values.extend(spec.env.iter().chain([&own]).filter_map(|v| env(v)));
        for (_, doc) in files {
            if let Some(map) = doc.read_lock::<rhai::Map>()
                && let Some((_, v)) = map.iter().find(|(k, _)| k.replace('-', "_") == spec.name)
                && let Ok(text) = v.clone().into_string()
            {
                values.push(text);
            }
        }
        for v in values {
            redactor.register(&Secret::new(v));
        }
    }
}

/// The command line a parameter error points into.
struct CommandLine<'a> {
    program: &'a str,
    args: &'a [String],
    masked: &'a [(usize, usize)],
}

pub(crate) fn stdlib_from(dir: Option<&str>) -> Stdlib {
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

fn resolve_params(
    specs: &[ParamSpec],
    run_args: &params::RunArgs,
    mut errors: Vec<ParamError>,
    env: &dyn Fn(&str) -> Option<String>,
    redactor: &Redactor,
) -> Result<(Resolved, Option<Duration>), Vec<ParamError>> {
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
    register_secrets(specs, &params::RunArgs::default(), &|_| None, &files, redactor);
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
    let resolved = params::resolve(specs, run_args, env, &files);
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

/// How long a stopped run's script gets to wind down (a child stopped gracefully, a release
/// recovered), and then its cleanup hooks, all together: Ctrl-C, SIGTERM and `--timeout` end
/// the process within two seconds (the README's promise).
const STOP_WAIT: Duration = Duration::from_millis(1500);
const CLEANUP_WHEN_STOPPED: Duration = Duration::from_millis(300);

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
        let (reason, wait, level, message) = match ended {
            Ended::Finished(r) => return r,
            Ended::Signal => (
                CancelReason::Interrupted,
                STOP_WAIT,
                Level::Warn,
                "interrupted: stopping (press Ctrl-C again to stop at once)".to_string(),
            ),
            Ended::Deadline => (
                CancelReason::RunDeadline,
                STOP_WAIT,
                Level::Error,
                format!("the run exceeded --timeout {}", duration::format(timeout.unwrap_or_default())),
            ),
        };
        // Cancel before logging: a script asking on the terminal (env::confirm) holds the live
        // view, and lets go of it only once cancelled.
        ctx.root().cancel(reason);
        ctx.log(level, message);
        tokio::select! {
            r = &mut rx => r.unwrap_or_else(|_| lost()),
            _ = tokio::time::sleep(wait) => Err(crate::ctx::terminated(ctx.root())),
            _ = signal() => Err(crate::ctx::terminated(ctx.root())),
        }
    })
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn signal() {
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
}

/// The error event of a report: where it points is the first of its locations in a file of
/// the user's (`user_file`), relative to the working directory, as a CI annotation wants it.
fn error_event(kind: &str, d: &ScriptDiag, user_file: &dyn Fn(&str) -> bool) -> EventBody {
    let at = d.locations().into_iter().find(|(f, ..)| user_file(f) && Path::new(f).is_file());
    let cwd = std::env::current_dir().ok();
    let rel = |f: String| match cwd.as_deref().and_then(|c| Path::new(&f).strip_prefix(c).ok()) {
        Some(r) => r.display().to_string(),
        None => f,
    };
    let (file, line, col) = match at {
        Some((f, l, c)) => (Some(rel(f)), Some(l), Some(c)),
        None => (None, None, None),
    };
    EventBody::Error { kind: kind.into(), message: d.message().into(), diagnostic: d.render(false), file, line, col }
}

impl Report<'_> {
    fn emit(&self, kind: &str, diags: &[ScriptDiag]) {
        for d in diags {
            self.events.emit(error_event(kind, d, &|_| true));
        }
    }

    fn compile(&self, errors: &[CompileError], sources: &crate::sources::Sources) -> RunError {
        let diags: Vec<ScriptDiag> = errors.iter().map(|e| e.to_diag(sources)).collect();
        self.emit("compile", &diags);
        self.events.run_finished(Outcome::Failed, ExitCode::USAGE, Vec::new());
        RunError::Compile(diags)
    }

    fn params(&self, errors: &[ParamError], line: &CommandLine<'_>, redactor: &Redactor) -> RunError {
        let diags = params::diags(errors, line.program, line.args, line.masked, redactor);
        self.emit("params", &diags);
        self.events.run_finished(Outcome::Failed, ExitCode::USAGE, Vec::new());
        RunError::Params { diags, redactor: redactor.clone() }
    }

    fn runtime(
        &self,
        err: RunError,
        kind: ErrorKind,
        ctx: &HostCtx,
        closed: Vec<String>,
        user_file: &dyn Fn(&str) -> bool,
    ) -> RunError {
        let (RunError::Failed { diag, .. } | RunError::Stopped { diag, .. }) = &err else {
            unreachable!("runtime() reports run failures only")
        };
        let outcome = if matches!(err, RunError::Stopped { reason: CancelReason::Interrupted, .. }) {
            Outcome::Cancelled
        } else {
            Outcome::Failed
        };
        self.events.emit(error_event(kind.as_str(), diag, user_file));
        if ctx.settings().artifacts.is_some() {
            let _ = crate::modules::fs::write_artifact(ctx, "error.txt", &diag.render(false));
        }
        self.events.run_finished(outcome, err.exit_code(), closed);
        err
    }
}
