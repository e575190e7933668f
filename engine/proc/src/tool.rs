//! A CLI the wrappers drive (`kind`, `docker`): which binary, where its output is logged, which
//! run it belongs to and what cancels it.

use crate::error::ProcError;
use crate::run::{Logger, Output, Spec, Supervisor, run};
use kmsctl_host::Level;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One CLI, ready to run.
#[derive(Clone)]
pub(crate) struct Tool {
    /// The binary: a name on PATH or a path.
    pub program: String,
    /// The environment variable that overrides it (for hints).
    pub env_var: &'static str,
    /// Where output lines and notes go.
    pub log: Option<Logger>,
    /// Stops live commands when the run ends.
    pub supervisor: Option<Arc<dyn Supervisor>>,
    /// Cancels running commands and retry sleeps.
    pub cancel: CancellationToken,
}

impl Tool {
    /// `name` from PATH, or the binary named by `env_var` when it is set.
    pub(crate) fn new(name: &str, env_var: &'static str) -> Self {
        let program = std::env::var(env_var).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| name.into());
        Self { program, env_var, log: None, supervisor: None, cancel: CancellationToken::new() }
    }

    /// A spec running this tool with `args`.
    pub(crate) fn spec(&self, args: Vec<String>) -> Spec {
        let mut s = Spec::new(self.program.clone(), args);
        s.log = self.log.clone();
        s.supervisor = self.supervisor.clone();
        let name = s.short_name().to_string();
        s.not_found_hint =
            Some(format!("install {name} or add its directory to PATH, or set {}=/path/to/{name}", self.env_var));
        s
    }

    /// Run a spec; any exit code is returned.
    pub(crate) async fn run(&self, spec: Spec) -> Result<Output, ProcError> {
        run(spec, &self.cancel).await
    }

    /// Run with `args`; a non-zero exit is a `failed` error.
    pub(crate) async fn ok(&self, args: Vec<String>) -> Result<Output, ProcError> {
        self.run(self.spec(args)).await?.check()
    }

    /// Log a note.
    pub(crate) fn note(&self, level: Level, message: impl Into<String>) {
        if let Some(log) = &self.log {
            log(level, message.into());
        }
    }

    /// Sleep, cancellably.
    pub(crate) async fn sleep(&self, d: Duration) -> Result<(), ProcError> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.cancel.cancelled() => Err(ProcError::Cancelled),
        }
    }
}

/// Refuse values that would be read as an option where a name or path is expected (the
/// command line has no shell, but the CLI still parses flags).
pub(crate) fn positional(what: &str, v: &str) -> Result<(), ProcError> {
    if v.is_empty() {
        return Err(ProcError::Usage(format!("{what} is empty")));
    }
    if v.starts_with('-') {
        return Err(ProcError::Usage(format!("{what} '{v}' starts with '-'")));
    }
    Ok(())
}
