//! Background processes: started, optionally waited on until a readiness line appears, then
//! left running while the playbook goes on (a port-forward, a local server, a deploy in
//! `--block` mode). Whoever registers them with a [`Supervisor`](crate::run::Supervisor)
//! stops them when the run ends.

use crate::capture::{Capture, TAIL_LINES};
use crate::error::ProcError;
use crate::group::Group;
use crate::run::{LineHook, Output, Spec, start_with};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
    stdout: Arc<Mutex<Capture>>,
    stderr: Arc<Mutex<Capture>>,
    status: watch::Receiver<Option<Exit>>,
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
        let bg = Self { pid, command, group, grace, stdout, stderr, status };
        let Some(ready) = ready else { return Ok(bg) };
        let mut seen_rx = seen.subscribe();
        let mut status_rx = bg.status.clone();
        // The watch guards are not Send: drop them inside the branch futures.
        let is_ready = async move {
            let _ = seen_rx.wait_for(|s| *s).await;
        };
        let exited = async move {
            let _ = status_rx.wait_for(Option::is_some).await;
        };
        tokio::select! {
            biased;
            _ = is_ready => Ok(bg),
            _ = exited => {
                if *seen.borrow() {
                    return Ok(bg);
                }
                let code = bg.exit().map(|e| e.code).unwrap_or(-1);
                Err(ProcError::Failed { command: bg.command.clone(), code, tail: bg.tail(10) })
            }
            _ = tokio::time::sleep(ready.timeout) => {
                bg.stop().await;
                Err(ProcError::NotReady {
                    command: bg.command.clone(),
                    after: ready.timeout,
                    pattern: ready.pattern.to_string(),
                    tail: bg.tail(10),
                })
            }
            _ = cancel.cancelled() => {
                bg.stop().await;
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

    /// Captured stdout and stderr so far (the latest bytes when over the bound).
    pub(crate) fn output(&self) -> (String, String) {
        (self.stdout.lock().expect("capture lock").text(), self.stderr.lock().expect("capture lock").text())
    }

    /// The last lines of stderr (of stdout when stderr had none).
    pub(crate) fn tail(&self, n: usize) -> Vec<String> {
        let n = n.min(TAIL_LINES);
        let t = self.stderr.lock().expect("capture lock").tail(n);
        if t.is_empty() { self.stdout.lock().expect("capture lock").tail(n) } else { t }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Keep;
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
