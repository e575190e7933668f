//! Background processes: started, optionally waited on until a readiness line appears, then
//! left running while the playbook goes on (a port-forward, a local server, a deploy in
//! `--block` mode). Whoever registers them with a [`Supervisor`](crate::run::Supervisor)
//! stops them when the run ends.
//!
//! Detached ones ([`Background::spawn_detached`]) outlive the run: a session of their own (no
//! terminal, no signal of kmsctl's reaches them), output appended to a log file, no supervisor.
//! A later run finds them by pid (`pids`).

use crate::capture::{Capture, Keep, TAIL_LINES};
use crate::error::ProcError;
use crate::group::Group;
use crate::run::{LineHook, Output, Spec, base_command, spawn_error, start_with};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often a detached process's log is read while waiting for its readiness line.
const LOG_POLL: Duration = Duration::from_millis(50);

/// What a readiness line looks like.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// The line contains this text.
    Substring(String),
    /// The line matches this regex.
    Regex(regex::Regex),
}

impl Pattern {
    /// Does `line` match?
    pub(crate) fn matches(&self, line: &str) -> bool {
        match self {
            Self::Substring(s) => line.contains(s.as_str()),
            Self::Regex(r) => r.is_match(line),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Substring(s) => write!(f, "'{s}'"),
            Self::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// Wait for a line (stdout or stderr) before [`Background::spawn`] returns.
#[derive(Clone, Debug)]
pub(crate) struct Ready {
    /// The line to wait for.
    pub pattern: Pattern,
    /// How long to wait; the process is stopped after that.
    pub timeout: Duration,
}

/// How a background process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exit {
    /// Exit code; 128 + n when killed by signal n.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
}

/// A process running in the background.
pub(crate) struct Background {
    pid: u32,
    command: String,
    group: Arc<Group>,
    grace: Duration,
    streams: Streams,
    status: watch::Receiver<Option<Exit>>,
}

/// Where a background process's output is.
enum Streams {
    /// Piped to kmsctl, captured by pump tasks.
    Pipes { stdout: Arc<Mutex<Capture>>, stderr: Arc<Mutex<Capture>> },
    /// Appended to a file (detached): read when asked.
    File(Arc<Mutex<LogFile>>),
}

/// A detached process's log file, read from where it ended when the process started (an
/// earlier process may have written to the same file).
struct LogFile {
    path: PathBuf,
    pos: u64,
    cap: Capture,
}

impl LogFile {
    /// Take in what was appended since the last call; returns the lines it completed.
    fn refresh(&mut self) -> Vec<String> {
        let mut buf = Vec::new();
        let read = std::fs::File::open(&self.path)
            .and_then(|mut f| f.seek(SeekFrom::Start(self.pos)).and_then(|_| f.read_to_end(&mut buf)));
        match read {
            Ok(n) if n > 0 => {
                self.pos += n as u64;
                self.cap.push(&buf)
            }
            _ => Vec::new(),
        }
    }
}

impl Background {
    /// Start `spec` in the background. With `ready`, return only once a matching line appeared;
    /// a process that exits first is a `failed` error, one that stays silent too long is
    /// stopped and a `timeout` error. `cancel` aborts the readiness wait (and stops it).
    pub(crate) async fn spawn(spec: Spec, ready: Option<Ready>, cancel: &CancellationToken) -> Result<Self, ProcError> {
        let grace = spec.grace;
        let seen = Arc::new(watch::Sender::new(false));
        let hook: Option<LineHook> = ready.as_ref().map(|r| {
            let (pattern, seen) = (r.pattern.clone(), seen.clone());
            Arc::new(move |line: &str| {
                if !*seen.borrow() && pattern.matches(line) {
                    seen.send_replace(true);
                }
            }) as LineHook
        });
        let running = start_with(Spec { timeout: None, ..spec }, hook)?;
        let (stdout, stderr) = running.captures();
        let (pid, command, group) = (running.pid(), running.command().to_string(), running.group());
        let (tx, status) = watch::channel(None);
        tokio::spawn(async move {
            let exit = match running.finish(&CancellationToken::new()).await {
                Ok(Output { code, signal, .. }) => Exit { code, signal },
                Err(_) => Exit { code: -1, signal: None },
            };
            tx.send_replace(Some(exit));
        });
        let bg = Self { pid, command, group, grace, streams: Streams::Pipes { stdout, stderr }, status };
        let Some(ready) = ready else { return Ok(bg) };
        let mut seen_rx = seen.subscribe();
        // The watch guards are not Send: drop them inside the futures.
        let is_ready = async move {
            let _ = seen_rx.wait_for(|s| *s).await;
        };
        bg.await_ready(is_ready, move || *seen.borrow(), ready, cancel).await
    }

    /// Start `spec` detached: in a session of its own, stdin from /dev/null, stdout and stderr
    /// appended to `log`, and no supervisor, so it runs on after kmsctl exits. `ready` waits
    /// for a line in the log as [`Background::spawn`] does; not being ready stops it.
    pub(crate) async fn spawn_detached(
        spec: Spec,
        log: &Path,
        ready: Option<Ready>,
        cancel: &CancellationToken,
    ) -> Result<Self, ProcError> {
        let io = |e: std::io::Error| ProcError::Io(format!("log file {}: {e}", log.display()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(io)?;
        let pos = file.metadata().map_err(io)?.len();
        let mut cmd = base_command(&spec)?;
        cmd.stdin(Stdio::null()).stdout(file.try_clone().map_err(io)?).stderr(file);
        let mut wrap = process_wrap::tokio::CommandWrap::from(cmd);
        wrap.wrap(process_wrap::tokio::ProcessSession);
        // Unwrapped again: waiting on the whole group would reap nothing of ours but the leader.
        let mut child = wrap.spawn().map_err(|e| spawn_error(&spec, e))?.into_inner();
        let pid = child.id().ok_or_else(|| ProcError::Internal("a just-started child has no pid".into()))?;
        let group = Arc::new(Group::new(pid as i32));
        let (tx, status) = watch::channel(None);
        let g = group.clone();
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(s) => Exit { code: s.code().or(s.signal().map(|n| 128 + n)).unwrap_or(-1), signal: s.signal() },
                Err(_) => Exit { code: -1, signal: None },
            };
            g.mark_exited();
            tx.send_replace(Some(exit));
        });
        let cap = Capture::new(spec.max_output, Keep::Tail);
        let file = Arc::new(Mutex::new(LogFile { path: log.to_path_buf(), pos, cap }));
        let bg = Self {
            pid,
            command: spec.command_line(),
            group,
            grace: spec.grace,
            streams: Streams::File(file.clone()),
            status,
        };
        let Some(ready) = ready else { return Ok(bg) };
        let scan = move |p: &Pattern| file.lock().expect("log lock").refresh().iter().any(|l| p.matches(l));
        let (scan2, p2) = (scan.clone(), ready.pattern.clone());
        let is_ready = async move {
            while !scan(&p2) {
                tokio::time::sleep(LOG_POLL).await;
            }
        };
        let p3 = ready.pattern.clone();
        bg.await_ready(is_ready, move || scan2(&p3), ready, cancel).await
    }

    /// Wait until `is_ready`; a process that exits first is a `failed` error unless
    /// `seen_after_exit` finds the line after all, one that stays silent too long is stopped
    /// and a `timeout` error, and `cancel` stops it.
    async fn await_ready(
        self,
        is_ready: impl Future<Output = ()>,
        seen_after_exit: impl FnOnce() -> bool,
        ready: Ready,
        cancel: &CancellationToken,
    ) -> Result<Self, ProcError> {
        let mut status_rx = self.status.clone();
        let exited = async move {
            let _ = status_rx.wait_for(Option::is_some).await;
        };
        tokio::select! {
            biased;
            _ = is_ready => Ok(self),
            _ = exited => {
                if seen_after_exit() {
                    return Ok(self);
                }
                let code = self.exit().map(|e| e.code).unwrap_or(-1);
                Err(ProcError::Failed { command: self.command.clone(), code, tail: self.tail(10) })
            }
            _ = tokio::time::sleep(ready.timeout) => {
                self.stop().await;
                Err(ProcError::NotReady {
                    command: self.command.clone(),
                    after: ready.timeout,
                    pattern: ready.pattern.to_string(),
                    tail: self.tail(10),
                })
            }
            _ = cancel.cancelled() => {
                self.stop().await;
                Err(ProcError::Cancelled)
            }
        }
    }

    /// The process id (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line.
    pub(crate) fn command(&self) -> &str {
        &self.command
    }

    /// How it ended, or `None` while it runs.
    pub(crate) fn exit(&self) -> Option<Exit> {
        *self.status.borrow()
    }

    /// Wait until it ends.
    pub(crate) async fn wait(&self) -> Exit {
        let mut rx = self.status.clone();
        let _ = rx.wait_for(Option::is_some).await;
        self.exit().unwrap_or(Exit { code: -1, signal: None })
    }

    /// Stop the process group (SIGTERM, grace, SIGKILL) and wait until it ended.
    pub(crate) async fn stop(&self) -> Exit {
        self.group.terminate(self.grace).await;
        self.wait().await
    }

    /// Captured stdout and stderr so far (the latest bytes when over the bound). A detached
    /// process's log (both streams) comes back as stdout.
    pub(crate) fn output(&self) -> (String, String) {
        match &self.streams {
            Streams::Pipes { stdout, stderr } => {
                (stdout.lock().expect("capture lock").text(), stderr.lock().expect("capture lock").text())
            }
            Streams::File(f) => {
                let mut f = f.lock().expect("log lock");
                f.refresh();
                (f.cap.text(), String::new())
            }
        }
    }

    /// The last lines of stderr (of stdout when stderr had none; of the log when detached).
    pub(crate) fn tail(&self, n: usize) -> Vec<String> {
        let n = n.min(TAIL_LINES);
        match &self.streams {
            Streams::Pipes { stdout, stderr } => {
                let t = stderr.lock().expect("capture lock").tail(n);
                if t.is_empty() { stdout.lock().expect("capture lock").tail(n) } else { t }
            }
            Streams::File(f) => {
                let mut f = f.lock().expect("log lock");
                f.refresh();
                f.cap.tail(n)
            }
        }
    }

    /// The log file of a detached process.
    pub(crate) fn log_file(&self) -> Option<PathBuf> {
        match &self.streams {
            Streams::File(f) => Some(f.lock().expect("log lock").path.clone()),
            Streams::Pipes { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    fn sh(script: &str) -> Spec {
        let mut s = Spec::new("sh", vec!["-c".into(), script.into()]);
        s.keep = Keep::Tail;
        s
    }

    #[test]
    fn waits_for_a_ready_line_then_runs_until_stopped() {
        let rt = rt();
        let ready = Ready { pattern: Pattern::Substring("listening".into()), timeout: Duration::from_secs(10) };
        let bg = rt
            .block_on(Background::spawn(
                sh("sleep 0.2; echo 'server listening on 8080' >&2; sleep 30"),
                Some(ready),
                &CancellationToken::new(),
            ))
            .unwrap();
        assert!(bg.exit().is_none());
        assert!(bg.output().1.contains("listening"));
        let t = Instant::now();
        let exit = rt.block_on(bg.stop());
        assert_eq!(exit.signal, Some(15));
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn exiting_before_ready_fails_and_silence_times_out() {
        let rt = rt();
        let r = |t| Some(Ready { pattern: Pattern::Regex(regex::Regex::new("^up$").unwrap()), timeout: t });
        let e = rt
            .block_on(Background::spawn(
                sh("echo nope >&2; exit 4"),
                r(Duration::from_secs(10)),
                &CancellationToken::new(),
            ))
            .err()
            .unwrap();
        assert!(matches!(&e, ProcError::Failed { code: 4, tail, .. } if tail == &["nope"]), "{e:?}");
        let e = rt
            .block_on(Background::spawn(sh("sleep 30"), r(Duration::from_millis(200)), &CancellationToken::new()))
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "`sh -c 'sleep 30'` was not ready after 200ms (waiting for a line matching /^up$/)");
    }
}
