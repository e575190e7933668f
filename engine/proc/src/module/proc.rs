//! `proc`: external commands and background processes for playbooks.

use super::{Opts, R, TextOpts, err, exec, logger, output_map, scalar, supervisor};
use crate::background::{Background, Pattern, Ready};
use crate::capture::Keep;
use crate::error::ProcError;
use crate::run::{DEFAULT_GRACE, Spec};
use kmsctl_host::usage_err;
use kmsctl_host::{BuiltModule, ModuleBuilder, NativeModule};
use kmsctl_host::{HostCtx, Secret};
use kmsctl_host::{Level, PlannedOp};
use rhai::{Array, Dynamic, INT, Map};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The `proc` native module.
pub struct Proc;

/// A background process, as scripts hold it.
#[derive(Clone)]
pub(crate) struct ProcessHandle {
    /// `None`: a process a plan recorded and never started (its command line in `planned`).
    bg: Option<Arc<Background>>,
    planned: String,
    ctx: HostCtx,
}

const COMMON: [&str; 7] = ["env", "env_clear", "cwd", "stdin", "grace", "max_output", "log"];
const RUN_OPTS: &[&str] = &["timeout", "check", "secret_stdout", "read_only"];
const START_OPTS: &[&str] = &["ready", "ready_regex", "ready_timeout", "detach", "log_file"];
const IS_RUNNING_OPTS: &[&str] = &["command_contains"];
const STOP_PID_OPTS: &[&str] = &["command_contains", "grace"];
/// Default readiness timeout of `proc::start`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default capture bound of a background process (the latest output is kept).
const BACKGROUND_MAX_OUTPUT: usize = 1 << 20;

fn allowed(extra: &[&'static str]) -> Vec<&'static str> {
    COMMON.iter().chain(extra).copied().collect()
}

/// A program name or path; relative paths resolve against the playbook's directory.
fn program(ctx: &HostCtx, p: &str, func: &str) -> R<String> {
    if p.trim().is_empty() {
        return Err(usage_err(format!("{func}: the program is empty")));
    }
    if !p.contains('/') {
        return Ok(p.to_string());
    }
    // Absolute, so a `cwd` option cannot change which file runs.
    let path = ctx.resolve_path(p);
    let path = if path.is_relative() { std::env::current_dir().map(|d| d.join(&path)).unwrap_or(path) } else { path };
    Ok(path.display().to_string())
}

fn args(ctx: &HostCtx, a: &Array, func: &str) -> R<Vec<String>> {
    let refuse = |i: usize| {
        usage_err(format!(
            "{func}: argument {} is a secret; secrets must not go on a command line, where other \
             processes can read them: pass it in `env` or `stdin`",
            i + 1
        ))
    };
    a.iter()
        .enumerate()
        .map(|(i, v)| {
            if v.is::<Secret>() {
                return Err(refuse(i));
            }
            let s = scalar(v).map_err(|e| usage_err(format!("{func}: argument {}: {e}", i + 1)))?;
            // A registered secret's value that lost its type on the way (e.g. interpolated).
            if ctx.redactor().redact(&s) != s {
                return Err(refuse(i));
            }
            Ok(s)
        })
        .collect()
}

fn spec(ctx: &HostCtx, prog: &str, a: &Array, o: &Opts, func: &'static str) -> R<Spec> {
    let mut s = Spec::new(program(ctx, prog, func)?, args(ctx, a, func)?);
    s.env = o.text_map("env")?;
    for (k, _) in &s.env {
        if k.is_empty() || k.contains(['=', '\0']) {
            return Err(usage_err(format!("{func}: '{k}' is not a valid environment variable name")));
        }
    }
    s.env_clear = o.bool("env_clear", false)?;
    s.cwd = o.str("cwd")?.map(|p| ctx.resolve_path(&p));
    s.stdin = o.text("stdin")?;
    s.grace = o.duration("grace")?.unwrap_or(DEFAULT_GRACE);
    if let Some(n) = o.int("max_output")? {
        s.max_output = usize::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| usage_err(format!("{func}: max_output must be a positive number of bytes")))?;
    }
    s.line_level = match o.str("log")?.as_deref() {
        None | Some("debug") => Some(Level::Debug),
        Some("info") => Some(Level::Info),
        Some("none") => None,
        Some(x) => return Err(usage_err(format!("{func}: log must be \"debug\", \"info\" or \"none\", got \"{x}\""))),
    };
    s.log = Some(logger(ctx));
    s.supervisor = Some(supervisor(ctx));
    Ok(s)
}

fn run(ctx: &HostCtx, prog: &str, a: Array, opts: Map, func: &'static str, check: bool) -> R<Map> {
    let o = Opts::new(&opts, func, &allowed(RUN_OPTS))?;
    let mut s = spec(ctx, prog, &a, &o, func)?;
    s.timeout = o.duration("timeout")?;
    let secret_stdout = o.bool("secret_stdout", false)?;
    s.log_stdout = !secret_stdout;
    let check = o.bool("check", check)?;
    // `read_only: true` says the command changes nothing (`kubectl get`, `git rev-parse`):
    // plans run it; every other command is recorded and "succeeds" with no output.
    if ctx.mode().is_plan() && !o.bool("read_only", false)? {
        let command = std::iter::once(s.program.as_str()).chain(s.args.iter().map(String::as_str)).collect::<Vec<_>>();
        ctx.record(PlannedOp::new("proc run", command.join(" ")));
        let planned = crate::run::Output {
            command: command.join(" "),
            pid: 0,
            code: 0,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            duration: Duration::ZERO,
            tail: Vec::new(),
        };
        return Ok(output_map(ctx, planned, secret_stdout));
    }
    let token = ctx.scope().token().clone();
    let out = exec(ctx, async move { crate::run::run(s, &token).await })?;
    let out = if check {
        let r = ctx.redactor();
        out.check().map_err(|e| err(e.redacted(|l| r.redact(l).into_owned())))?
    } else {
        out
    };
    Ok(output_map(ctx, out, secret_stdout))
}

fn start(ctx: &HostCtx, prog: &str, a: Array, opts: Map) -> R<ProcessHandle> {
    const F: &str = "proc::start";
    let o = Opts::new(&opts, F, &allowed(START_OPTS))?;
    let mut s = spec(ctx, prog, &a, &o, F)?;
    s.keep = Keep::Tail;
    if o.get("max_output").is_none() {
        s.max_output = BACKGROUND_MAX_OUTPUT;
    }
    let pattern = match (o.str("ready")?, o.str("ready_regex")?) {
        (Some(_), Some(_)) => return Err(usage_err(format!("{F}: give ready or ready_regex, not both"))),
        (Some(text), None) => Some(Pattern::Substring(text)),
        (None, Some(re)) => {
            Some(Pattern::Regex(regex::Regex::new(&re).map_err(|e| usage_err(format!("{F}: ready_regex: {e}")))?))
        }
        (None, None) => None,
    };
    let timeout = o.duration("ready_timeout")?;
    if timeout.is_some() && pattern.is_none() {
        return Err(usage_err(format!("{F}: ready_timeout needs ready or ready_regex")));
    }
    let ready = pattern.map(|pattern| Ready { pattern, timeout: timeout.unwrap_or(READY_TIMEOUT) });
    if ctx.mode().is_plan() {
        let command = std::iter::once(s.program.as_str()).chain(s.args.iter().map(String::as_str)).collect::<Vec<_>>();
        let detach = if o.bool("detach", false)? { " (detached: outlives the run)" } else { "" };
        ctx.record(PlannedOp::new("proc start", format!("{}{detach}", command.join(" "))));
        return Ok(ProcessHandle { bg: None, planned: command.join(" "), ctx: ctx.clone() });
    }
    let token = ctx.scope().token().clone();
    if o.bool("detach", false)? {
        return start_detached(ctx, s, ready, &o);
    }
    if o.get("log_file").is_some() {
        return Err(usage_err(format!("{F}: log_file is for detached processes (detach: true)")));
    }
    let bg = exec(ctx, async move { Background::spawn(s, ready, &token).await })?;
    ctx.log(Level::Info, format!("started `{}` (pid {})", bg.command(), bg.pid()));
    Ok(ProcessHandle { bg: Some(Arc::new(bg)), planned: String::new(), ctx: ctx.clone() })
}

/// `proc::start(.., #{ detach: true })`: a process that outlives the run, never registered for
/// cleanup; its output goes to `log_file` (default a new file under the artifacts dir).
fn start_detached(ctx: &HostCtx, mut s: Spec, ready: Option<Ready>, o: &Opts) -> R<ProcessHandle> {
    const F: &str = "proc::start";
    for k in ["stdin", "log"] {
        if o.get(k).is_some() {
            return Err(usage_err(format!(
                "{F}: {k} is not for detached processes: they read /dev/null and write to their log_file"
            )));
        }
    }
    s.supervisor = None;
    let io = |e: std::io::Error| err(ProcError::Io(format!("{F}: log file: {e}")));
    let log = match o.str("log_file")? {
        Some(p) => {
            let p = ctx.resolve_path(&p);
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            p
        }
        None => {
            let dir = ctx.artifacts_dir().map_err(io)?.join("processes");
            std::fs::create_dir_all(&dir).map_err(io)?;
            let (_, path) = tempfile::Builder::new()
                .prefix(&format!("{}-", s.short_name()))
                .suffix(".log")
                .tempfile_in(&dir)
                .map_err(io)?
                .keep()
                .map_err(|e| io(e.error))?;
            path
        }
    };
    // Absolute: a later run (from anywhere) reads it by this path.
    let log = std::path::absolute(&log).map_err(io)?;
    let token = ctx.scope().token().clone();
    let l2 = log.clone();
    let bg = exec(ctx, async move { Background::spawn_detached(s, &l2, ready, &token).await })?;
    ctx.log(
        Level::Info,
        format!("started `{}` detached (pid {}; output in {})", bg.command(), bg.pid(), log.display()),
    );
    Ok(ProcessHandle { bg: Some(Arc::new(bg)), planned: String::new(), ctx: ctx.clone() })
}

/// The pid argument of `is_running` and `stop_pid`.
fn pid_arg(func: &str, pid: INT) -> R<u32> {
    u32::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| usage_err(format!("{func}: {pid} is not the pid of a process kmsctl could have started")))
}

/// The `command_contains` option: required by stop_pid, never empty (that would match anything).
fn command_contains(o: &Opts, func: &str, required: bool) -> R<Option<String>> {
    match o.str("command_contains")? {
        Some(t) if t.is_empty() => Err(usage_err(format!("{func}: command_contains must not be empty"))),
        None if required => Err(usage_err(format!(
            "{func}: give command_contains, text the process's command line contains, so a reused pid is \
             never stopped"
        ))),
        other => Ok(other),
    }
}

fn is_running(pid: INT, opts: &Map) -> R<bool> {
    const F: &str = "proc::is_running";
    let o = Opts::new(opts, F, IS_RUNNING_OPTS)?;
    let pid = pid_arg(F, pid)?;
    let want = command_contains(&o, F, false)?.unwrap_or_default();
    Ok(matches!(crate::pids::look(pid, &want), crate::pids::Seen::Match { .. }))
}

fn stop_pid(ctx: &HostCtx, pid: INT, opts: &Map) -> R<bool> {
    const F: &str = "proc::stop_pid";
    let o = Opts::new(opts, F, STOP_PID_OPTS)?;
    let pid = pid_arg(F, pid)?;
    let want = command_contains(&o, F, true)?.unwrap_or_default();
    let grace = o.duration("grace")?.unwrap_or(DEFAULT_GRACE);
    if ctx.mode().is_plan() {
        // Whether there is one to stop is a local read: the plan says what the run would do.
        let there = matches!(crate::pids::look(pid, &want), crate::pids::Seen::Match { .. });
        let note = if there { "running: would be stopped" } else { "not running: nothing to stop" };
        ctx.record(PlannedOp::new("proc stop_pid", format!("{pid} ({want})")).note(note));
        return Ok(there);
    }
    let w = want.clone();
    let stopped = exec(ctx, async move { crate::pids::stop(pid, &w, grace).await })?;
    if stopped {
        ctx.log(Level::Info, format!("stopped pid {pid} ({want})"));
    }
    Ok(stopped)
}

/// Where `program` would be found: an executable file on PATH, or the path itself.
pub(crate) fn which(program: &str, resolve: impl Fn(&str) -> PathBuf) -> Option<PathBuf> {
    let executable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = resolve(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| executable(p))
}

impl ProcessHandle {
    fn describe(&self) -> String {
        let Some(bg) = &self.bg else {
            return format!("planned process `{}` (not started: --plan)", self.planned);
        };
        let state = match bg.exit() {
            None => "running".to_string(),
            Some(e) => format!("exited with code {}", e.code),
        };
        format!("process `{}` (pid {}, {state})", bg.command(), bg.pid())
    }
}

impl NativeModule for Proc {
    fn name(&self) -> &'static str {
        "proc"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "External commands, without a shell: `proc::run(\"kubectl\", [\"version\"])`. Arguments go to the\n\
             program as they are; secrets go through `env` or `stdin` (a secret argument is refused).\n\
             Each command runs in its own process group, stopped (SIGTERM, then SIGKILL after `grace`)\n\
             on timeout, on cancellation and when the run ends. Output lines go to the debug log.\n\
             \n\
             Options of run/check/start: env (#{NAME: value or secret, OTHER: () removes}), env_clear,\n\
             cwd (relative to the playbook), stdin (text or secret), grace (\"1s\"), max_output (bytes\n\
             kept per stream), log (\"debug\", \"info\" or \"none\": where output lines go).",
        );
        b.ty::<ProcessHandle>("Process");

        let c = ctx.clone();
        b.func(
            "run",
            &["program: string", "args: array", "map"],
            "Run a command; returns #{code, ok, stdout, stderr, signal, duration, duration_ms, pid, command,\n\
             truncated}. A non-zero exit is returned, not thrown (see `proc::check`).",
            move |p: &str, a: Array| run(&c, p, a, Map::new(), "proc::run", false),
        )
        .plans();
        let c = ctx.clone();
        b.func(
            "run",
            &["program: string", "args: array", "options: map", "map"],
            "Run a command with options: the common ones, plus timeout (stop it and throw `timeout`),\n\
             check (throw `failed` on a non-zero exit), secret_stdout (stdout returned as a secret,\n\
             trimmed, and not logged: for commands that print a token).",
            move |p: &str, a: Array, o: Map| run(&c, p, a, o, "proc::run", false),
        )
        .options(&allowed(RUN_OPTS))
        .plans();
        let c = ctx.clone();
        b.func(
            "check",
            &["program: string", "args: array", "map"],
            "Run a command; a non-zero exit throws `failed` quoting the last lines of stderr.",
            move |p: &str, a: Array| run(&c, p, a, Map::new(), "proc::check", true),
        )
        .plans();
        let c = ctx.clone();
        b.func(
            "check",
            &["program: string", "args: array", "options: map", "map"],
            "`proc::run` with options, throwing `failed` on a non-zero exit.",
            move |p: &str, a: Array, o: Map| run(&c, p, a, o, "proc::check", true),
        )
        .options(&allowed(RUN_OPTS))
        .plans();
        let c = ctx.clone();
        b.func(
            "start",
            &["program: string", "args: array", "Process"],
            "Start a background process (`spawn` is a reserved word in Rhai); it is stopped when the run\n\
             ends, however it ends.",
            move |p: &str, a: Array| start(&c, p, a, Map::new()),
        )
        .plans();
        let c = ctx.clone();
        b.func(
            "start",
            &["program: string", "args: array", "options: map", "Process"],
            "Start a background process with options: the common ones, plus ready (a text its stdout or\n\
             stderr prints once it is ready) or ready_regex, and ready_timeout (\"60s\"). With ready it\n\
             returns once the line appeared; exiting first throws `failed`, staying silent too long stops\n\
             it and throws `timeout`. detach: true starts it in a session of its own that outlives the run\n\
             (never stopped at the end; .stop() still works during the run), stdin /dev/null, stdout and\n\
             stderr appended to log_file (relative to the playbook; default a new file under\n\
             <artifacts>/processes/), where `ready` looks for its line; a later run checks on it with\n\
             proc::is_running and stops it with proc::stop_pid.",
            move |p: &str, a: Array, o: Map| start(&c, p, a, o),
        )
        .options(&allowed(START_OPTS))
        .plans();
        b.func(
            "is_running",
            &["pid: int", "options: map", "bool"],
            "Is `pid` alive (not a zombie) and does its command line contain `command_contains`? For a\n\
             detached process of an earlier run: a reused pid running something else is not it.",
            |pid: INT, o: Map| is_running(pid, &o),
        )
        .options(IS_RUNNING_OPTS)
        .reads();
        b.func("is_running", &["pid: int", "bool"], "Is `pid` alive (not a zombie)?", |pid: INT| {
            is_running(pid, &Map::new())
        })
        .reads();
        let c = ctx.clone();
        b.func(
            "stop_pid",
            &["pid: int", "options: map", "bool"],
            "Stop a detached process of an earlier run by its process group (SIGTERM, `grace` (\"1s\"),\n\
             SIGKILL), only if it is alive and its command line contains `command_contains` (required).\n\
             Returns false when no such process runs; throws `conflict` (and signals nothing) when the pid\n\
             runs something else or leads no process group of its own.",
            move |pid: INT, o: Map| stop_pid(&c, pid, &o),
        )
        .options(STOP_PID_OPTS)
        .plans();
        let c = ctx.clone();
        b.func(
            "which",
            &["program: string", "any"],
            "The full path of `program` on PATH (or of a path given), or `()` when it is not there.",
            move |p: &str| {
                which(p, |x| c.resolve_path(x)).map(|p| Dynamic::from(p.display().to_string())).unwrap_or(Dynamic::UNIT)
            },
        )
        .reads();

        b.method(
            "pid",
            &["process: Process", "int"],
            "The process id (also its process group id).",
            |p: &mut ProcessHandle| p.bg.as_ref().map_or(0, |bg| bg.pid() as INT),
        )
        .reads();
        b.method("running", &["process: Process", "bool"], "Is it still running?", |p: &mut ProcessHandle| {
            p.bg.as_ref().is_some_and(|bg| bg.exit().is_none())
        })
        .reads();
        b.method(
            "log_file",
            &["process: Process", "any"],
            "The log file of a detached process (absolute), or `()` for one whose output kmsctl captures.",
            |p: &mut ProcessHandle| {
                p.bg.as_ref()
                    .and_then(|bg| bg.log_file())
                    .map(|f| Dynamic::from(f.display().to_string()))
                    .unwrap_or(Dynamic::UNIT)
            },
        )
        .reads();
        b.method(
            "stop",
            &["process: Process", "int"],
            "Stop it now (SIGTERM to its process group, SIGKILL after the grace); returns the exit code\n\
             (128 + signal when killed).",
            |p: &mut ProcessHandle| -> R<INT> {
                let Some(bg) = p.bg.clone() else { return Ok(0) };
                exec(&p.ctx, async move { Ok(bg.stop().await.code as INT) })
            },
        )
        .mutates();
        b.method(
            "wait",
            &["process: Process", "int"],
            "Wait until it exits; returns the exit code.",
            |p: &mut ProcessHandle| -> R<INT> {
                let Some(bg) = p.bg.clone() else { return Ok(0) };
                exec(&p.ctx, async move { Ok(bg.wait().await.code as INT) })
            },
        )
        .reads();
        b.method(
            "wait",
            &["process: Process", "timeout: string", "int"],
            "Wait up to `timeout` for it to exit; returns the exit code, or throws `timeout` (it keeps running).",
            |p: &mut ProcessHandle, t: Dynamic| -> R<INT> {
                let d = kmsctl_host::duration::from_dynamic(&t).map_err(|e| usage_err(format!("wait: {e}")))?;
                let Some(bg) = p.bg.clone() else { return Ok(0) };
                exec(&p.ctx, async move {
                    match tokio::time::timeout(d, bg.wait()).await {
                        Ok(e) => Ok(e.code as INT),
                        Err(_) => {
                            Err(ProcError::StillRunning { command: bg.command().into(), pid: bg.pid(), after: d })
                        }
                    }
                })
            },
        )
        .reads();
        b.method(
            "output",
            &["process: Process", "map"],
            "Output so far: #{stdout, stderr, running, code} (code is `()` while it runs); the latest\n\
             bytes when over max_output. Registered secrets are masked.",
            |p: &mut ProcessHandle| {
                let (out, err) = p.bg.as_ref().map(|bg| bg.output()).unwrap_or_default();
                let r = p.ctx.redactor();
                let mut m = Map::new();
                m.insert("stdout".into(), r.redact(&out).into_owned().into());
                m.insert("stderr".into(), r.redact(&err).into_owned().into());
                let Some(bg) = &p.bg else {
                    m.insert("running".into(), false.into());
                    m.insert("code".into(), (0 as INT).into());
                    return m;
                };
                let exit = bg.exit();
                m.insert("running".into(), exit.is_none().into());
                m.insert("code".into(), exit.map(|e| Dynamic::from(e.code as INT)).unwrap_or(Dynamic::UNIT));
                m
            },
        )
        .reads();
        b.method("to_string", &["process: Process", "string"], "", |p: &mut ProcessHandle| p.describe()).reads();
        b.method("to_debug", &["process: Process", "string"], "", |p: &mut ProcessHandle| p.describe()).reads();
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_finds_programs_on_path_and_given_paths() {
        let sh = which("sh", |p| PathBuf::from(p)).expect("sh is on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"));
        assert!(which("kmsctl-no-such-tool", |p| PathBuf::from(p)).is_none());
        assert_eq!(which("/bin/sh", |p| PathBuf::from(p)), Some(PathBuf::from("/bin/sh")));
        assert!(which("./nope/x", |p| PathBuf::from(p)).is_none());
    }

    #[test]
    fn option_lists_hold_the_common_options() {
        let run = allowed(RUN_OPTS);
        assert!(run.contains(&"env") && run.contains(&"timeout"));
        assert!(allowed(START_OPTS).contains(&"ready_regex"));
    }
}
