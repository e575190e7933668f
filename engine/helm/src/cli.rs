//! Running helm: find the binary, detect its major version once, run it in its own process
//! group. The terminal's Ctrl-C never reaches helm directly; on cancellation kmsctl sends it
//! SIGTERM (helm then marks an interrupted upgrade failed instead of leaving it pending), and
//! SIGKILL only if it does not stop.

use crate::error::HelmError;
use kmsctl_host::{CancelScope, HostCtx};
use kmsctl_proc::{Spec, Text};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// How long helm gets to stop after SIGTERM.
const TERM_GRACE: Duration = Duration::from_millis(800);
/// helm's output kept in memory (a release manifest of thousands of objects is tens of MB).
const MAX_OUTPUT: usize = 256 << 20;

/// A helm binary and its major version.
#[derive(Clone)]
pub(crate) struct HelmCli {
    /// The binary (`$KMSCTL_HELM` or `helm` on PATH).
    pub bin: PathBuf,
    /// `v4.3.1`.
    pub version: String,
    /// 3 or 4.
    pub major: u32,
    /// The run whose cleanup stops every helm still running when it ends: a stopped run
    /// exits without waiting for its script thread, and must leave no helm behind.
    pub run: Option<HostCtx>,
}

/// What a helm run produced.
#[derive(Clone, Debug)]
pub(crate) struct Output {
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
    pub(crate) async fn detect() -> Result<Self, HelmError> {
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
        Ok(Self { bin, version, major, run: None })
    }

    /// Run helm with `args` (never secrets: those go through files or `stdin`), stopping its
    /// process group gracefully if `scope` is cancelled.
    pub(crate) async fn run(
        &self,
        args: &[String],
        stdin: Option<&str>,
        scope: &CancelScope,
    ) -> Result<Output, HelmError> {
        let mut spec = Spec::new(self.bin.to_string_lossy(), args.to_vec());
        spec.stdin = stdin.map(|t| Text::Plain(t.to_string()));
        spec.grace = TERM_GRACE;
        spec.max_output = MAX_OUTPUT;
        spec.line_level = None;
        spec.not_found_hint = Some("install helm 3 or 4, or set KMSCTL_HELM to its path".into());
        if let Some(ctx) = &self.run {
            kmsctl_proc::supervise(&mut spec, ctx);
        }
        // helm talks to the cluster kmsctl connected to, given explicitly (`Kube::args`):
        // nothing in the environment may steer it elsewhere (HELM_KUBEAPISERVER,
        // HELM_KUBETOKEN, HELM_KUBECONTEXT, HELM_KUBEASUSER, ...).
        for (k, _) in std::env::vars_os() {
            if let Some(k) = k.to_str().filter(|k| k.starts_with("HELM_KUBE")) {
                spec.env.push((k.to_string(), None));
            }
        }
        if matches!(args.first().map(String::as_str), Some("template" | "lint")) {
            spec.env.extend(go_gc_env());
        }
        tracing::debug!(helm = %self.bin.display(), args = ?args, "running helm");
        let running = kmsctl_proc::start(spec)?;
        let (out, cancelled) = running.finish_or_stopped(scope.token()).await?;
        Ok(Output { code: out.code, stdout: out.stdout, stderr: out.stderr, cancelled })
    }

    /// Run and require success.
    pub(crate) async fn ok(
        &self,
        args: &[String],
        stdin: Option<&str>,
        scope: &CancelScope,
    ) -> Result<Output, HelmError> {
        let out = self.run(args, stdin, scope).await?;
        if out.code != 0 && !out.cancelled {
            return Err(failed(args, &out));
        }
        Ok(out)
    }
}

/// Go's garbage collector costs a short helm render a third of its CPU (measured: `helm
/// template` 0.14 -> 0.08 CPU-s, its RSS unchanged at ~50 MB), and a plan starts one per
/// release. Unless the user set `GOGC` or `GOMEMLIMIT`, renders run with the collector off
/// until the heap nears 512 MiB. Not installs: with it off, a 13-party deploy's helm processes
/// doubled their RSS (110 MB) for no measurable time.
fn go_gc_env() -> Vec<(String, Option<Text>)> {
    if std::env::var_os("GOGC").is_some() || std::env::var_os("GOMEMLIMIT").is_some() {
        return Vec::new();
    }
    vec![("GOGC".into(), Some(Text::Plain("off".into()))), ("GOMEMLIMIT".into(), Some(Text::Plain("512MiB".into())))]
}

/// The error for a failed helm run: the subcommand and the end of its stderr.
pub(crate) fn failed(args: &[String], out: &Output) -> HelmError {
    let command: Vec<&str> = args.iter().take_while(|a| !a.starts_with('-')).map(String::as_str).collect();
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    HelmError::Failed { command: command.join(" "), code: out.code, stderr: tail }
}
