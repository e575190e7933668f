//! Running one external command, without a shell: the argument vector goes to the program as
//! is, secrets go through the environment or stdin (never argv), output is captured within a
//! bound and streamed to the run log, and the child's whole process group is stopped on
//! timeout or cancellation (SIGTERM, a grace period, SIGKILL).

use crate::capture::{Capture, Keep};
use crate::error::ProcError;
use crate::group::Group;
use kmsctl_host::Level;
use kmsctl_host::Secret;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a stopped group gets between SIGTERM and SIGKILL, unless the spec says otherwise.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(1);
/// Default capture bound of a command's stdout and stderr (each).
pub(crate) const DEFAULT_MAX_OUTPUT: usize = 8 << 20;
/// How long to keep reading pipes after the group is gone (something that escaped the group
/// may still hold them open).
const DRAIN: Duration = Duration::from_secs(1);
/// Lines of stderr quoted in failure messages.
const FAILURE_TAIL: usize = 10;

/// Where log lines go: the level and the (not yet redacted) text.
pub(crate) type Logger = Arc<dyn Fn(Level, String) + Send + Sync>;
/// Undo a [`Supervisor::started`] registration.
pub(crate) type Release = Box<dyn FnOnce() + Send>;
/// Called with every complete output line (readiness checks).
pub(crate) type LineHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Something that must stop live process groups when the run ends (the host's cleanup hooks).
pub trait Supervisor: Send + Sync {
    /// A group started; the returned closure is called once it is gone.
    fn started(&self, command: &str, group: Arc<Group>) -> Release;
}

/// A value handed to a child: plain text or a secret.
#[derive(Clone, Debug)]
pub enum Text {
    /// Plain text.
    Plain(String),
    /// A secret: only ever exposed to the child's environment or stdin.
    Secret(Secret),
}

impl Text {
    /// The real value, for the child.
    pub fn expose(&self) -> &str {
        match self {
            Self::Plain(s) => s,
            Self::Secret(s) => s.expose(),
        }
    }
}

/// What to run and how.
#[derive(Clone)]
pub struct Spec {
    /// The program: a name looked up on PATH, or a path.
    pub program: String,
    /// Arguments, passed as they are (no shell).
    pub args: Vec<String>,
    /// Environment changes: `Some` sets, `None` removes.
    pub env: Vec<(String, Option<Text>)>,
    /// Start from an empty environment.
    pub env_clear: bool,
    /// Working directory (default: kmsctl's).
    pub cwd: Option<PathBuf>,
    /// Written to the child's stdin, which is then closed (default: no stdin).
    pub stdin: Option<Text>,
    /// Stop the command after this long.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
    /// Capture bound per stream, in bytes.
    pub max_output: usize,
    /// Which end of an over-long stream to keep.
    pub keep: Keep,
    /// Log sink for output lines and notes.
    pub log: Option<Logger>,
    /// Level of streamed output lines (`None`: do not stream).
    pub line_level: Option<Level>,
    /// Stream stdout lines too (off when stdout is a secret).
    pub log_stdout: bool,
    /// The hint when the program is not found.
    pub not_found_hint: Option<String>,
    /// Registers the group for stopping when the run ends.
    pub supervisor: Option<Arc<dyn Supervisor>>,
}

impl Spec {
    /// Run `program` with `args` and the defaults.
    pub fn new(program: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            program: program.into(),
            args,
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            stdin: None,
            timeout: None,
            grace: DEFAULT_GRACE,
            max_output: DEFAULT_MAX_OUTPUT,
            keep: Keep::Head,
            log: None,
            line_level: Some(Level::Debug),
            log_stdout: true,
            not_found_hint: None,
            supervisor: None,
        }
    }

    /// The command line for messages, shell-quoted (it never holds secrets).
    pub fn command_line(&self) -> String {
        std::iter::once(&self.program).chain(&self.args).map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    }

    /// The program's file name, to prefix its log lines.
    pub fn short_name(&self) -> &str {
        self.program.rsplit('/').next().unwrap_or(&self.program)
    }
}

/// Quote an argument for display the way a POSIX shell would read it back.
pub(crate) fn quote(a: &str) -> String {
    let plain = !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"_./:=,@%+-".contains(&b));
    if plain { a.to_string() } else { format!("'{}'", a.replace('\'', r"'\''")) }
}

/// A finished command.
#[derive(Clone, Debug)]
pub struct Output {
    /// The command line.
    pub command: String,
    /// The child's pid.
    pub pid: u32,
    /// Exit code; 128 + n when killed by signal n.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Captured stdout (lossy UTF-8).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8).
    pub stderr: String,
    /// Some output was dropped because of the capture bound.
    pub truncated: bool,
    /// Wall time.
    pub duration: Duration,
    /// The last lines of stderr (of stdout when stderr had none), for messages.
    pub tail: Vec<String>,
}

impl Output {
    /// Did it exit 0?
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// This output, or a `failed` error quoting the last lines of stderr.
    pub fn check(self) -> Result<Self, ProcError> {
        if self.success() {
            Ok(self)
        } else {
            Err(ProcError::Failed { command: self.command, code: self.code, tail: self.tail })
        }
    }
}

/// A started command.
pub struct Running {
    child: Child,
    group: Arc<Group>,
    pid: u32,
    command: String,
    stdout: Arc<Mutex<Capture>>,
    stderr: Arc<Mutex<Capture>>,
    pumps: Vec<JoinHandle<()>>,
    started: Instant,
    timeout: Option<Duration>,
    grace: Duration,
    _guard: Guard,
}

/// Kills the group if the command is dropped while running (a dropped future, runtime
/// shutdown), and releases the supervisor registration.
struct Guard {
    group: Arc<Group>,
    release: Option<Release>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.group.is_done() {
            self.group.kill_now();
        }
        if let Some(r) = self.release.take() {
            r();
        }
    }
}

/// Start a command. Needs a tokio runtime context.
pub fn start(spec: Spec) -> Result<Running, ProcError> {
    start_with(spec, None)
}

/// The command for `spec`: program, arguments, environment and working directory; the caller
/// wires its stdio and process group.
pub(crate) fn base_command(spec: &Spec) -> Result<tokio::process::Command, ProcError> {
    if let Some(cwd) = &spec.cwd
        && !cwd.is_dir()
    {
        return Err(ProcError::Usage(format!("working directory {} does not exist", cwd.display())));
    }
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args);
    if spec.env_clear {
        cmd.env_clear();
    }
    for (k, v) in &spec.env {
        match v {
            Some(v) => cmd.env(k, v.expose()),
            None => cmd.env_remove(k),
        };
    }
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    Ok(cmd)
}

pub(crate) fn start_with(spec: Spec, hook: Option<LineHook>) -> Result<Running, ProcError> {
    let command = spec.command_line();
    let mut cmd = base_command(&spec)?;
    cmd.stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: the terminal's Ctrl-C goes to kmsctl only, which then stops the group.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| spawn_error(&spec, e))?;
    let pid = child.id().ok_or_else(|| ProcError::Internal("a just-started child has no pid".into()))?;
    let group = Arc::new(Group::new(pid as i32));
    let release = spec.supervisor.as_ref().map(|s| s.started(&command, group.clone()));
    let guard = Guard { group: group.clone(), release };

    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), spec.stdin.clone()) {
        tokio::spawn(async move {
            // A child that exits without reading stdin closes the pipe: not an error.
            let _ = pipe.write_all(input.expose().as_bytes()).await;
            let _ = pipe.shutdown().await;
        });
    }
    let stdout = Arc::new(Mutex::new(Capture::new(spec.max_output, spec.keep)));
    let stderr = Arc::new(Mutex::new(Capture::new(spec.max_output, spec.keep)));
    let name = spec.short_name().to_string();
    let on_line = |log_it: bool| {
        let (log, level, name, hook) = (spec.log.clone(), spec.line_level, name.clone(), hook.clone());
        move |line: &str| {
            if let Some(h) = &hook {
                h(line);
            }
            if let (Some(log), Some(level), true) = (&log, level, log_it)
                && !line.trim().is_empty()
            {
                log(level, format!("{name}: {line}"));
            }
        }
    };
    let mut pumps = Vec::new();
    if let Some(p) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(p, stdout.clone(), on_line(spec.log_stdout))));
    }
    if let Some(p) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(p, stderr.clone(), on_line(true))));
    }
    Ok(Running {
        child,
        group,
        pid,
        command,
        stdout,
        stderr,
        pumps,
        started: Instant::now(),
        timeout: spec.timeout,
        grace: spec.grace,
        _guard: guard,
    })
}

pub(crate) fn spawn_error(spec: &Spec, e: std::io::Error) -> ProcError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ProcError::NotFound {
            program: spec.program.clone(),
            hint: spec
                .not_found_hint
                .clone()
                .unwrap_or_else(|| format!("install {} or add its directory to PATH", spec.short_name())),
        },
        _ => ProcError::Spawn { program: spec.program.clone(), source: e },
    }
}

async fn pump(mut r: impl AsyncRead + Unpin, cap: Arc<Mutex<Capture>>, on_line: impl Fn(&str)) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let lines = cap.lock().expect("capture lock").push(&buf[..n]);
                lines.iter().for_each(|l| on_line(l));
            }
        }
    }
    let last = cap.lock().expect("capture lock").finish();
    if let Some(l) = last {
        on_line(&l);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Exited,
    Cancelled,
    Timeout,
}

impl Running {
    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process group.
    pub fn group(&self) -> Arc<Group> {
        self.group.clone()
    }

    /// The command line.
    pub fn command(&self) -> &str {
        &self.command
    }

    pub(crate) fn captures(&self) -> (Arc<Mutex<Capture>>, Arc<Mutex<Capture>>) {
        (self.stdout.clone(), self.stderr.clone())
    }

    /// Wait for the command to end. On `cancel` or the spec's timeout the group is stopped
    /// (SIGTERM, grace, SIGKILL) and the error says why. Processes the command left behind in
    /// its group are stopped too: a command does not outlive itself (use background processes
    /// for that).
    pub async fn finish(self, cancel: &CancellationToken) -> Result<Output, ProcError> {
        let timeout = self.timeout;
        match self.stop_and_collect(cancel).await? {
            (output, Stop::Exited) => Ok(output),
            (_, Stop::Cancelled) => Err(ProcError::Cancelled),
            (output, Stop::Timeout) => Err(ProcError::Timeout {
                command: output.command,
                after: timeout.unwrap_or_default(),
                tail: output.tail,
            }),
        }
    }

    /// Like [`Running::finish`], but a cancellation is no error: the output of the stopped
    /// command comes back, with `true` (a tool stopped by SIGTERM may have cleaned up after
    /// itself, and its output says how).
    pub async fn finish_or_stopped(self, cancel: &CancellationToken) -> Result<(Output, bool), ProcError> {
        let timeout = self.timeout;
        match self.stop_and_collect(cancel).await? {
            (output, Stop::Timeout) => Err(ProcError::Timeout {
                command: output.command,
                after: timeout.unwrap_or_default(),
                tail: output.tail,
            }),
            (output, stop) => Ok((output, stop == Stop::Cancelled)),
        }
    }

    async fn stop_and_collect(mut self, cancel: &CancellationToken) -> Result<(Output, Stop), ProcError> {
        let deadline = self.timeout.map(|t| self.started + t);
        let (stop, exited) = tokio::select! {
            s = self.child.wait() => {
                self.group.mark_exited();
                (Stop::Exited, Some(s))
            }
            _ = cancel.cancelled() => (Stop::Cancelled, None),
            _ = sleep_until(deadline) => (Stop::Timeout, None),
        };
        let status = match exited {
            Some(s) => {
                if self.group.alive() {
                    self.group.terminate(self.grace).await;
                }
                s
            }
            None => {
                let (child, group) = (&mut self.child, &self.group);
                let (s, ()) = tokio::join!(
                    async {
                        let s = child.wait().await;
                        group.mark_exited();
                        s
                    },
                    group.terminate(self.grace)
                );
                s
            }
        };
        let duration = self.started.elapsed();
        let pumps = futures::future::join_all(self.pumps.iter_mut());
        if tokio::time::timeout(DRAIN, pumps).await.is_err() {
            self.pumps.iter().for_each(JoinHandle::abort);
        }
        let status = status.map_err(|e| ProcError::Internal(format!("waiting for `{}`: {e}", self.command)))?;
        let (out, err) = (self.stdout.lock().expect("capture lock"), self.stderr.lock().expect("capture lock"));
        let tail = {
            let t = err.tail(FAILURE_TAIL);
            if t.is_empty() { out.tail(FAILURE_TAIL) } else { t }
        };
        let signal = status.signal();
        let output = Output {
            command: self.command.clone(),
            pid: self.pid,
            code: status.code().or(signal.map(|s| 128 + s)).unwrap_or(-1),
            signal,
            stdout: out.text(),
            stderr: err.text(),
            truncated: out.truncated() || err.truncated(),
            duration,
            tail,
        };
        Ok((output, stop))
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Run a command to completion. A non-zero exit is not an error here (see [`Output::check`]).
pub(crate) async fn run(spec: Spec, cancel: &CancellationToken) -> Result<Output, ProcError> {
    start(spec)?.finish(cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    fn sh(script: &str) -> Spec {
        Spec::new("sh", vec!["-c".into(), script.into()])
    }

    #[test]
    fn quotes_command_lines_for_messages() {
        let s = Spec::new("docker", vec!["build".into(), "--tag".into(), "a b".into(), "it's".into(), "".into()]);
        assert_eq!(s.command_line(), r"docker build --tag 'a b' 'it'\''s' ''");
    }

    #[test]
    fn captures_output_code_env_and_stdin() {
        let rt = rt();
        let mut spec = sh("printf 'out\\n'; printf 'err1\\nerr2\\n' >&2; read x; echo \"$x $TOKEN\"; exit 3");
        spec.env.push(("TOKEN".into(), Some(Text::Secret(Secret::new("tok-value")))));
        spec.stdin = Some(Text::Plain("from-stdin\n".into()));
        let out = rt.block_on(run(spec, &CancellationToken::new())).unwrap();
        assert_eq!(out.code, 3);
        assert_eq!(out.stdout, "out\nfrom-stdin tok-value\n");
        assert_eq!(out.tail, vec!["err1", "err2"]);
        let e = out.check().unwrap_err().to_string();
        assert!(e.starts_with("`sh -c ") && e.ends_with("` exited with code 3:\nerr1\nerr2"), "{e}");
    }

    #[test]
    fn a_missing_program_is_unavailable_with_a_hint() {
        let rt = rt();
        let e = rt.block_on(run(Spec::new("kmsctl-no-such-tool", vec![]), &CancellationToken::new())).unwrap_err();
        assert!(matches!(&e, ProcError::NotFound { program, .. } if program == "kmsctl-no-such-tool"), "{e:?}");
        assert_eq!(kmsctl_host::HostFailure::kind(&e), kmsctl_host::ErrorKind::Unavailable);
    }

    #[test]
    fn a_program_that_cannot_start_keeps_the_os_error() {
        let rt = rt();
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("not-executable");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let e = rt.block_on(run(Spec::new(tool.to_str().unwrap(), vec![]), &CancellationToken::new())).unwrap_err();
        let ProcError::Spawn { source, .. } = &e else { panic!("{e:?}") };
        assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().starts_with(&format!("cannot start '{}': ", tool.display())), "{e}");
        assert_eq!(kmsctl_host::HostFailure::kind(&e), kmsctl_host::ErrorKind::Unavailable);
    }

    #[test]
    fn timeout_and_cancel_stop_the_command() {
        let rt = rt();
        let mut spec = sh("echo started; sleep 30");
        spec.timeout = Some(Duration::from_millis(200));
        let t = std::time::Instant::now();
        let e = rt.block_on(run(spec, &CancellationToken::new())).unwrap_err();
        assert!(matches!(&e, ProcError::Timeout { tail, .. } if tail == &["started"]), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(3));
        let token = CancellationToken::new();
        let t2 = token.clone();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            t2.cancel();
        });
        let e = rt.block_on(run(sh("sleep 30"), &token)).unwrap_err();
        assert!(matches!(e, ProcError::Cancelled));
    }

    #[test]
    fn a_term_ignoring_command_is_killed_after_the_grace() {
        let rt = rt();
        let mut spec = sh("trap '' TERM; echo ready; while :; do sleep 0.05; done");
        spec.timeout = Some(Duration::from_millis(300));
        spec.grace = Duration::from_millis(200);
        let t = std::time::Instant::now();
        let e = rt.block_on(run(spec, &CancellationToken::new())).unwrap_err();
        assert!(matches!(e, ProcError::Timeout { .. }), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn output_is_bounded_and_lines_are_streamed() {
        let rt = rt();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        let mut spec = sh("echo one; echo two >&2; head -c 100000 /dev/zero");
        spec.max_output = 1000;
        spec.log = Some(Arc::new(move |lvl, msg| l2.lock().unwrap().push(format!("{lvl:?} {msg}"))));
        let out = rt.block_on(run(spec, &CancellationToken::new())).unwrap();
        assert!(out.truncated && out.stdout.len() == 1000);
        let got = lines.lock().unwrap().clone();
        assert!(got.contains(&"Debug sh: one".to_string()) && got.contains(&"Debug sh: two".to_string()), "{got:?}");
    }

    #[test]
    fn a_missing_working_directory_is_a_usage_error() {
        let rt = rt();
        let mut spec = Spec::new("true", vec![]);
        spec.cwd = Some("/nonexistent-kmsctl-dir".into());
        let e = rt.block_on(run(spec, &CancellationToken::new())).unwrap_err();
        assert!(matches!(e, ProcError::Usage(_)), "{e:?}");
    }
}
