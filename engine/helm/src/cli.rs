//! Running helm: find the binary, detect its major version once, run it in its own process
//! group. The terminal's Ctrl-C never reaches helm directly; on cancellation kmsctl sends it
//! SIGTERM (helm then marks an interrupted upgrade failed instead of leaving it pending), and
//! SIGKILL only if it does not stop.

use crate::error::HelmError;
use kmsctl_host::task::CancelScope;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long helm gets to stop after SIGTERM.
const TERM_GRACE: Duration = Duration::from_millis(800);

/// A helm binary and its major version.
#[derive(Clone, Debug)]
pub struct HelmCli {
    /// The binary (`$KMSCTL_HELM` or `helm` on PATH).
    pub bin: PathBuf,
    /// `v4.3.1`.
    pub version: String,
    /// 3 or 4.
    pub major: u32,
}

/// What a helm run produced.
#[derive(Clone, Debug)]
pub struct Output {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The run was stopped because the scope was cancelled.
    pub cancelled: bool,
}

impl HelmCli {
    /// Find helm and ask its version.
    pub async fn detect() -> Result<Self, HelmError> {
        let bin = PathBuf::from(std::env::var_os("KMSCTL_HELM").unwrap_or_else(|| "helm".into()));
        let out = tokio::process::Command::new(&bin)
            .args(["version", "--template", "{{.Version}}"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| {
                HelmError::Unavailable(format!(
                    "cannot run {}: {e} (install helm 3 or 4, or set KMSCTL_HELM to its path)",
                    bin.display()
                ))
            })?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major = version.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
        if !out.status.success() || !(3..=4).contains(&major) {
            return Err(HelmError::Unavailable(format!(
                "{} version said '{version}' ({}); kmsctl needs helm 3 or 4",
                bin.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(Self { bin, version, major })
    }

    /// Run helm with `args` (never secrets: those go through files or `stdin`), stopping it
    /// gracefully if `scope` is cancelled.
    pub async fn run(&self, args: &[String], stdin: Option<&[u8]>, scope: &CancelScope) -> Result<Output, HelmError> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        tracing::debug!(helm = %self.bin.display(), args = ?args, "running helm");
        let mut child =
            cmd.spawn().map_err(|e| HelmError::Unavailable(format!("cannot run {}: {e}", self.bin.display())))?;
        if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
            w.write_all(data).await.map_err(|e| HelmError::Output(e.to_string()))?;
        }
        let pid = child.id();
        let wait = child.wait_with_output();
        tokio::pin!(wait);
        let (out, cancelled) = tokio::select! {
            out = &mut wait => (out, false),
            _ = scope.cancelled() => {
                if let Some(pid) = pid {
                    signal_group(pid, nix::sys::signal::Signal::SIGTERM);
                }
                match tokio::time::timeout(TERM_GRACE, &mut wait).await {
                    Ok(out) => (out, true),
                    Err(_) => {
                        if let Some(pid) = pid {
                            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                        }
                        (wait.await, true)
                    }
                }
            }
        };
        let out = out.map_err(|e| HelmError::Output(e.to_string()))?;
        Ok(Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            cancelled,
        })
    }

    /// Run and require success.
    pub async fn ok(&self, args: &[String], stdin: Option<&[u8]>, scope: &CancelScope) -> Result<Output, HelmError> {
        let out = self.run(args, stdin, scope).await?;
        if out.code != 0 && !out.cancelled {
            return Err(failed(args, &out));
        }
        Ok(out)
    }
}

fn signal_group(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// The error for a failed helm run: the subcommand and the end of its stderr.
pub fn failed(args: &[String], out: &Output) -> HelmError {
    let command: Vec<&str> = args.iter().take_while(|a| !a.starts_with('-')).map(String::as_str).collect();
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    HelmError::Failed { command: command.join(" "), code: out.code, stderr: tail }
}
